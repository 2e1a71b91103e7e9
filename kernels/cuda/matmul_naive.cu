// Naive matrix multiply C = A*B, row-major, A: m x k, B: k x n, C: m x n.
// One thread per output element reading its row of A and column of B straight from global memory:
// the baseline that shows what shared-memory tiling (matmul_tiled.cu) and cuBLAS add.

template <typename T>
__device__ __forceinline__ void matmul_naive(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                                             int m, int n, int k) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    const int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= m || col >= n) return;
    T acc = 0;
    for (int p = 0; p < k; ++p) {
        acc += a[(long long)row * k + p] * b[(long long)p * n + col];
    }
    c[(long long)row * n + col] = acc;
}

extern "C" __global__ void matmul_naive_f32(const float* a, const float* b, float* c, int m, int n, int k) {
    matmul_naive<float>(a, b, c, m, n, k);
}

extern "C" __global__ void matmul_naive_f64(const double* a, const double* b, double* c, int m, int n, int k) {
    matmul_naive<double>(a, b, c, m, n, k);
}
