// Local-memory tiled matrix multiply C = A*B, row-major, A: m x k, B: k x n, C: m x n.
// Built with -DREAL=float|double (double adds -DUSE_FP64) and -DTILE=<edge>. Launch with local size
// (TILE, TILE) and global size (n, m) rounded up to multiples of TILE; out-of-range elements are
// padded with zeros in local memory, so any m, n, k works.
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifndef REAL
#define REAL float
#endif
#ifndef TILE
#define TILE 16
#endif

__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void matmul_tiled(__global const REAL* restrict a, __global const REAL* restrict b, __global REAL* restrict c,
                  const int m, const int n, const int k) {
    __local REAL as[TILE][TILE];
    __local REAL bs[TILE][TILE];
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col = get_group_id(0) * TILE + tx;
    const int row = get_group_id(1) * TILE + ty;
    REAL acc = 0;
    for (int t = 0; t < k; t += TILE) {
        as[ty][tx] = (row < m && t + tx < k) ? a[(long)row * k + t + tx] : (REAL)0;
        bs[ty][tx] = (t + ty < k && col < n) ? b[(long)(t + ty) * n + col] : (REAL)0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int p = 0; p < TILE; ++p) {
            acc += as[ty][p] * bs[p][tx];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < m && col < n) {
        c[(long)row * n + col] = acc;
    }
}
