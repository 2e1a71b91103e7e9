// Direct 2-D convolution (cross-correlation, as deep-learning frameworks define it), forward pass.
// One work-item per output element; zero padding is handled by bounds checks, not a padded copy.
// Built with -DREAL=float or -DREAL=double (double adds -DUSE_FP64 and needs cl_khr_fp64), and
// -DNHWC for channels-last tensors (input N,H,W,C; filters K,R,S,C; output N,P,Q,K); without it
// input N,C,H,W; filters K,C,R,S; output N,K,P,Q.
// NDRange: NCHW (Q, P, N*K), NHWC (K, Q, N*P) so that neighbouring work-items write
// neighbouring outputs.
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#ifndef REAL
#define REAL float
#endif

__kernel void conv2d(__global const REAL* restrict x, __global const REAL* restrict w, __global REAL* restrict y,
                     const int N, const int C, const int H, const int W, const int K, const int R, const int S,
                     const int P, const int Q, const int stride, const int pad) {
#ifdef NHWC
    const int k = get_global_id(0), q = get_global_id(1), np = get_global_id(2);
    if (k >= K || q >= Q || np >= N * P) return;
    const int n = np / P, p = np % P;
#else
    const int q = get_global_id(0), p = get_global_id(1), nk = get_global_id(2);
    if (q >= Q || p >= P || nk >= N * K) return;
    const int n = nk / K, k = nk % K;
#endif
    REAL acc = 0;
    for (int r = 0; r < R; ++r) {
        const int ih = p * stride - pad + r;
        if (ih < 0 || ih >= H) continue;
        for (int s = 0; s < S; ++s) {
            const int iw = q * stride - pad + s;
            if (iw < 0 || iw >= W) continue;
#ifdef NHWC
            __global const REAL* xs = x + (((size_t)n * H + ih) * W + iw) * C;
            __global const REAL* ws = w + (((size_t)k * R + r) * S + s) * C;
            for (int c = 0; c < C; ++c) acc += xs[c] * ws[c];
#else
            for (int c = 0; c < C; ++c)
                acc += x[(((size_t)n * C + c) * H + ih) * W + iw] * w[(((size_t)k * C + c) * R + r) * S + s];
#endif
        }
    }
#ifdef NHWC
    y[(((size_t)n * P + p) * Q + q) * K + k] = acc;
#else
    y[(((size_t)n * K + k) * P + p) * Q + q] = acc;
#endif
}
