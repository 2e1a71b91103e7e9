// Register-blocked matrix multiply C = A*B, row-major, A: m x k, B: k x n, C: m x n.
// Each work-item computes a block of RB rows x 8 columns of C, accumulating outer products of a
// column slice of A (scalars) and a row slice of B (one REAL8 vector load): no local memory and no
// barriers, so CPU implementations (PoCL) compile it to straight vector FMAs. Built with
// -DREAL=float|double (double adds -DUSE_FP64) and -DRB=<rows>. Global size: (ceil(n/8), ceil(m/RB)).
// Blocks that stick out past the matrix edge take the scalar path.
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifndef REAL
#define REAL float
#endif
#define CAT(a, b) a##b
#define VEC(t, w) CAT(t, w)
#define REAL8 VEC(REAL, 8)
#ifndef RB
#define RB 4
#endif

__kernel void matmul_blocked(__global const REAL* restrict a, __global const REAL* restrict b,
                             __global REAL* restrict c, const int m, const int n, const int k) {
    const int col = get_global_id(0) * 8;
    const int row = get_global_id(1) * RB;
    if (row >= m || col >= n) return;
    if (row + RB <= m && col + 8 <= n) {
        REAL8 acc[RB];
        for (int r = 0; r < RB; ++r) acc[r] = (REAL8)(0);
        for (int p = 0; p < k; ++p) {
            const REAL8 bv = vload8(0, b + (long)p * n + col);
            for (int r = 0; r < RB; ++r) {
                acc[r] += a[(long)(row + r) * k + p] * bv;
            }
        }
        for (int r = 0; r < RB; ++r) vstore8(acc[r], 0, c + (long)(row + r) * n + col);
        return;
    }
    for (int r = row; r < min(row + RB, m); ++r) {
        for (int j = col; j < min(col + 8, n); ++j) {
            REAL acc = 0;
            for (int p = 0; p < k; ++p) acc += a[(long)r * k + p] * b[(long)p * n + j];
            c[(long)r * n + j] = acc;
        }
    }
}
