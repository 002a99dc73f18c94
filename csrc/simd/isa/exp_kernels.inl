// The float64 shifted exponential out[j] = exp(x[j] - shift), written once against the F64
// vector traits of each ISA file (included inside its anonymous namespace, after
// generic_kernels.inl: same ODR rule, no STL, no include guard).
//
// Why it exists: the softmax blocks of NCA and MLKR spend most of an evaluation in numpy's
// float64 exp, which is scalar libm on most CPUs. This one is branch-free and vectorised.
//
// Method (no -ffast-math anywhere: every step is an explicit traits call):
//   t = clamp(x - shift, -708, 708)          (max(lo, t) / min(hi, t) keep a NaN: traits max /
//                                             min return their second operand on a NaN)
//   k = round(t / ln2) with the 1.5 * 2^52 shifter (round to nearest, no conversion needed)
//   r = t - k ln2_hi - k ln2_lo              (ln2_hi has 32 significant bits: k ln2_hi exact)
//   exp(r) = 1 + (r + r² q(r)),  q = Taylor terms 1/2! .. 1/13! (Estrin); |r| <= ln2 / 2,
//                                             so the truncation is below 1e-18 relative
//   2^k from the shifter's low bits moved into the exponent field (k in [-1021, 1021]: the
//   result is always a normal number, never inf)
//   t < -708 (including -inf) -> 0 instead of numpy's subnormal (< 3.3e-308).
// Accuracy: within 1 ulp of the correctly rounded result with FMA, 2 ulp without (scalar).
// Traits needed beyond generic_kernels.inl's: pow2_bits(s) and zero_where_lt(v, a, b).

template <class X>
void shifted_exp(const double* x, std::size_t n, double shift, double* out) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    const V vshift = X::set1(shift);
    const V lo = X::set1(-708.0), hi = X::set1(708.0);
    const V log2e = X::set1(1.4426950408889634);
    const V shifter = X::set1(6755399441055744.0); // 1.5 * 2^52
    const V ln2_hi = X::set1(6.93147180369123816490e-01);
    const V ln2_lo = X::set1(1.90821492927058770002e-10);
    const V one = X::set1(1.0);
    // 1/i! for i = 2..13 (the divisions are exact-rounded at compile time).
    const V c13 = X::set1(1.0 / 6227020800.0), c12 = X::set1(1.0 / 479001600.0);
    const V c11 = X::set1(1.0 / 39916800.0), c10 = X::set1(1.0 / 3628800.0);
    const V c9 = X::set1(1.0 / 362880.0), c8 = X::set1(1.0 / 40320.0);
    const V c7 = X::set1(1.0 / 5040.0), c6 = X::set1(1.0 / 720.0);
    const V c5 = X::set1(1.0 / 120.0), c4 = X::set1(1.0 / 24.0);
    const V c3 = X::set1(1.0 / 6.0), c2 = X::set1(0.5);
    const V minus_ln2_hi = X::sub(X::zero(), ln2_hi), minus_ln2_lo = X::sub(X::zero(), ln2_lo);
    auto eval = [&](V v) noexcept {
        const V t0 = X::sub(v, vshift);
        const V t = X::min(hi, X::max(lo, t0));
        const V s = X::add(X::mul(t, log2e), shifter);
        const V k = X::sub(s, shifter);
        const V r = X::fmadd(k, minus_ln2_lo, X::fmadd(k, minus_ln2_hi, t));
        // Estrin's scheme: 4 dependent steps instead of Horner's 11 (the kernel is latency-
        // bound otherwise); the terms it reorders are below 2^-10 of the result.
        const V r2 = X::mul(r, r);
        const V r4 = X::mul(r2, r2);
        const V r8 = X::mul(r4, r4);
        const V p2 = X::fmadd(c3, r, c2), p4 = X::fmadd(c5, r, c4);
        const V p6 = X::fmadd(c7, r, c6), p8 = X::fmadd(c9, r, c8);
        const V p10 = X::fmadd(c11, r, c10), p12 = X::fmadd(c13, r, c12);
        const V q2 = X::fmadd(p4, r2, p2), q6 = X::fmadd(p8, r2, p6);
        const V q10 = X::fmadd(p12, r2, p10);
        const V q = X::fmadd(q10, r8, X::fmadd(q6, r4, q2));
        const V e = X::add(one, X::fmadd(r2, q, r));
        return X::zero_where_lt(X::mul(e, X::pow2_bits(s)), t0, lo);
    };
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) { // two independent chains per step
        const V a = eval(X::load(x + i));
        const V b = eval(X::load(x + i + W));
        X::store(out + i, a);
        X::store(out + i + W, b);
    }
    for (; i < n; i += W) {
        const std::size_t c = n - i < W ? n - i : W;
        if (c == W) {
            X::store(out + i, eval(X::load(x + i)));
        } else {
            X::store_partial(out + i, eval(X::load_partial(x + i, c)), c);
        }
    }
}
