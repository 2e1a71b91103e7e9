// Shared-memory tiled matrix multiply C = A*B, row-major, A: m x k, B: k x n, C: m x n.
// Each TILE x TILE thread block stages one tile of A and one of B in shared memory per step, so
// every global element is read m/TILE (or n/TILE) times instead of m (or n) times. Edges of
// matrices whose sizes are not multiples of TILE are padded with zeros in shared memory.
// Launch with blockDim = (TILE, TILE) and gridDim = (ceil(n/TILE), ceil(m/TILE)).

#ifndef TILE
#define TILE 32
#endif

template <typename T>
__device__ __forceinline__ void matmul_tiled(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                                             int m, int n, int k) {
    __shared__ T as[TILE][TILE];
    __shared__ T bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * TILE + tx;
    const int row = blockIdx.y * TILE + ty;
    T acc = 0;
    for (int t = 0; t < k; t += TILE) {
        as[ty][tx] = (row < m && t + tx < k) ? a[(long long)row * k + t + tx] : T(0);
        bs[ty][tx] = (t + ty < k && col < n) ? b[(long long)(t + ty) * n + col] : T(0);
        __syncthreads();
        // as[ty][p] is one broadcast per warp row; bs[p][tx] reads consecutive banks.
#pragma unroll
        for (int p = 0; p < TILE; ++p) {
            acc += as[ty][p] * bs[p][tx];
        }
        __syncthreads();
    }
    if (row < m && col < n) {
        c[(long long)row * n + col] = acc;
    }
}

extern "C" __global__ void matmul_tiled_f32(const float* a, const float* b, float* c, int m, int n, int k) {
    matmul_tiled<float>(a, b, c, m, n, k);
}

extern "C" __global__ void matmul_tiled_f64(const double* a, const double* b, double* c, int m, int n, int k) {
    matmul_tiled<double>(a, b, c, m, n, k);
}
