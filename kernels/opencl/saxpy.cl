// SAXPY y = a*x + y, one work-item per element.
// Built with -DREAL=float or -DREAL=double (double adds -DUSE_FP64 and needs cl_khr_fp64).
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifndef REAL
#define REAL float
#endif

__kernel void saxpy(const ulong n, const REAL a, __global const REAL* restrict x, __global REAL* restrict y) {
    const size_t i = get_global_id(0);
    if (i < n) {
        y[i] = a * x[i] + y[i];
    }
}
