// Scaled row-wise softmax of an attention score block, in place, with an optional causal mask.
//
// The block is G heads x R queries x n keys, contiguous; one thread block per row (G*R rows).
// Row `row` holds the scores of query q0 + row % R against keys 0..n-1. Each row becomes
// p_j = exp(scale*s_j - m) / sum_j exp(scale*s_j - m), with m the row's largest scaled score
// (stable); with `causal`, keys j > q0 + row % R get p_j = 0. Arithmetic is in float for float
// and half scores, in double for double. blockDim.x must be a multiple of 32 (at most 1024).
// Compiled at run time by CuPy (NVRTC); tests/test_kernels_nvcc.py compiles it with nvcc --ptx.
#include <cuda_fp16.h>

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ double load(const double* p) { return *p; }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__half* p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void store(double* p, double x) { *p = x; }
__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }
__device__ __forceinline__ float neg_inf(float) { return __int_as_float(0xff800000); }
__device__ __forceinline__ double neg_inf(double) { return __longlong_as_double(0xfff0000000000000ULL); }

struct MaxOp {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a > b ? a : b; }
};
struct SumOp {
    template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};

// Reduce one value per thread to one value for the block; every thread gets the result.
template <typename A, typename Op>
__device__ A block_reduce(A v, A identity, Op op, A* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? shared[lane] : identity;
        for (int offset = 16; offset > 0; offset >>= 1) {
            v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
        }
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    const A result = shared[0];
    __syncthreads();  // shared is reused by the next reduction
    return result;
}

template <typename T, typename A>
__device__ void softmax_row(T* scores, long long n, int rows_per_head, long long q0, int causal, A scale) {
    __shared__ A shared[32];
    T* row = scores + (long long)blockIdx.x * n;
    long long valid = n;
    if (causal) {
        const long long query = q0 + (long long)(blockIdx.x % rows_per_head);
        valid = query + 1 < n ? query + 1 : n;
    }
    const A lowest = neg_inf(scale);
    A m = lowest;
    for (long long j = threadIdx.x; j < valid; j += blockDim.x) {
        const A x = load(row + j) * scale;
        m = x > m ? x : m;
    }
    m = block_reduce(m, lowest, MaxOp(), shared);
    A z = 0;
    for (long long j = threadIdx.x; j < valid; j += blockDim.x) {
        z += exp_acc(load(row + j) * scale - m);
    }
    z = block_reduce(z, A(0), SumOp(), shared);
    const A inv = A(1) / z;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) {
        store(row + j, j < valid ? exp_acc(load(row + j) * scale - m) * inv : A(0));
    }
}

extern "C" __global__ void attention_softmax_f32(float* scores, long long n, int rows_per_head, long long q0,
                                                 int causal, float scale) {
    softmax_row<float, float>(scores, n, rows_per_head, q0, causal, scale);
}

extern "C" __global__ void attention_softmax_f16(__half* scores, long long n, int rows_per_head, long long q0,
                                                 int causal, float scale) {
    softmax_row<__half, float>(scores, n, rows_per_head, q0, causal, scale);
}

extern "C" __global__ void attention_softmax_f64(double* scores, long long n, int rows_per_head, long long q0,
                                                 int causal, double scale) {
    softmax_row<double, double>(scores, n, rows_per_head, q0, causal, scale);
}
