// SAXPY y = a*x + y, one element per thread with a grid-stride loop (any n, any grid size).
// Compiled at run time by CuPy (NVRTC); tests/test_kernels_nvcc.py compiles it with nvcc --ptx.

template <typename T>
__device__ __forceinline__ void axpy(long long n, T a, const T* __restrict__ x, T* __restrict__ y) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = a * x[i] + y[i];
    }
}

extern "C" __global__ void saxpy_f32(long long n, float a, const float* __restrict__ x, float* __restrict__ y) {
    axpy<float>(n, a, x, y);
}

extern "C" __global__ void saxpy_f64(long long n, double a, const double* __restrict__ x, double* __restrict__ y) {
    axpy<double>(n, a, x, y);
}
