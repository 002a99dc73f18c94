// Float-query kernels over f16, bf16, u8 and u4 codes, written once against vector traits.
//
// Included by simd/isa/quant_*.cpp inside an anonymous namespace, after quant_shapes.inl (see
// there and generic_kernels.inl for why: internal linkage, per-unit flags, no STL).
//
// The traits of the quant_*.cpp files look alike by design (one vocabulary per instruction set,
// the only per-ISA code); the kernels built on them are written once, here.
//
// A kernel is a decoder (code bytes -> W floats) times a combiner (how a decoded block meets the
// query block). The decoders never read past the code: full steps read whole blocks, the last
// partial step reads exactly the remaining bytes. A partial step loads zeros for missing query,
// scale and code lanes, which adds exactly 0 to every combiner below.
//
// Traits interface (X), on top of the float traits of generic_kernels.inl:
//   T = float, V, W (lanes; must divide 64), zero, load, load_partial, add, sub, fmadd(a, b, c)
//   = a * b + c, fnmadd(a, b, c) = c - a * b, reduce
//   from_u8(p) / from_u8_partial(p, n)           W bytes -> W floats
//   from_f16(p) / _partial, from_bf16(p) / _partial   W 16-bit words at byte address p
//   nib_lo(p) / nib_hi(p) and _partial(p, n)     low / high nibbles of W bytes -> W floats
//   to_f16(out, v) / to_f16_partial(out, v, n), to_bf16(...) likewise (round to nearest even)
//
// Accumulation: pair kernels keep four accumulators (enough FMA chains in flight for
// L1-resident data); the four-codes form keeps one per code, which is already four chains.

struct DecU8 {
    static constexpr std::size_t kBytes = 1;
    template <class X> static typename X::V load(const std::uint8_t* p) noexcept {
        return X::from_u8(p);
    }
    template <class X>
    static typename X::V load_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return X::from_u8_partial(p, n);
    }
};

struct DecF16 {
    static constexpr std::size_t kBytes = 2;
    template <class X> static typename X::V load(const std::uint8_t* p) noexcept {
        return X::from_f16(p);
    }
    template <class X>
    static typename X::V load_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return X::from_f16_partial(p, n);
    }
};

struct DecBF16 {
    static constexpr std::size_t kBytes = 2;
    template <class X> static typename X::V load(const std::uint8_t* p) noexcept {
        return X::from_bf16(p);
    }
    template <class X>
    static typename X::V load_partial(const std::uint8_t* p, std::size_t n) noexcept {
        return X::from_bf16_partial(p, n);
    }
};

// acc + q * c
struct CombDot {
    static constexpr bool kScale = false;
    template <class X>
    static typename X::V apply(typename X::V acc, typename X::V q, typename X::V,
                               typename X::V c) noexcept {
        return X::fmadd(q, c, acc);
    }
};

// acc + (q - c)^2
struct CombL2 {
    static constexpr bool kScale = false;
    template <class X>
    static typename X::V apply(typename X::V acc, typename X::V q, typename X::V,
                               typename X::V c) noexcept {
        const typename X::V d = X::sub(q, c);
        return X::fmadd(d, d, acc);
    }
};

// acc + (q - s * c)^2: the scalar quantiser's L2 with q = query - lo and s = step.
struct CombL2Scaled {
    static constexpr bool kScale = true;
    template <class X>
    static typename X::V apply(typename X::V acc, typename X::V q, typename X::V s,
                               typename X::V c) noexcept {
        const typename X::V d = X::fnmadd(s, c, q);
        return X::fmadd(d, d, acc);
    }
};

template <class X, class E> typename X::V scale_at(const float* s, std::size_t i) noexcept {
    if constexpr (E::kScale) {
        return X::load(s + i);
    } else {
        return X::zero();
    }
}

template <class X, class E>
typename X::V scale_partial(const float* s, std::size_t i, std::size_t n) noexcept {
    if constexpr (E::kScale) {
        return X::load_partial(s + i, n);
    } else {
        return X::zero();
    }
}

// ---- dense layouts (f16, bf16, u8): element j at byte j * kBytes --------------------------

template <class X, class D, class E>
float dense_pair(const float* q, const float* s, const std::uint8_t* c, std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    constexpr std::size_t B = D::kBytes;
    V a0 = X::zero(), a1 = X::zero(), a2 = X::zero(), a3 = X::zero();
    std::size_t i = 0;
    for (; i + 4 * W <= dim; i += 4 * W) {
        a0 = E::template apply<X>(a0, X::load(q + i), scale_at<X, E>(s, i),
                                  D::template load<X>(c + i * B));
        a1 = E::template apply<X>(a1, X::load(q + i + W), scale_at<X, E>(s, i + W),
                                  D::template load<X>(c + (i + W) * B));
        a2 = E::template apply<X>(a2, X::load(q + i + 2 * W), scale_at<X, E>(s, i + 2 * W),
                                  D::template load<X>(c + (i + 2 * W) * B));
        a3 = E::template apply<X>(a3, X::load(q + i + 3 * W), scale_at<X, E>(s, i + 3 * W),
                                  D::template load<X>(c + (i + 3 * W) * B));
    }
    for (; i + W <= dim; i += W) {
        a0 = E::template apply<X>(a0, X::load(q + i), scale_at<X, E>(s, i),
                                  D::template load<X>(c + i * B));
    }
    if (i < dim) {
        const std::size_t n = dim - i;
        a1 = E::template apply<X>(a1, X::load_partial(q + i, n), scale_partial<X, E>(s, i, n),
                                  D::template load_partial<X>(c + i * B, n));
    }
    return X::reduce(X::add(X::add(a0, a1), X::add(a2, a3)));
}

template <class X, class D, class E>
void dense_four(const float* q, const float* s, const std::uint8_t* const* c, std::size_t dim,
                float* out) noexcept {
    if constexpr (Pairwise<X>::value) {
        for (int r = 0; r < 4; ++r)
            out[r] = dense_pair<X, D, E>(q, s, c[r], dim);
        return;
    }
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    constexpr std::size_t B = D::kBytes;
    const std::uint8_t *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
    V a0 = X::zero(), a1 = X::zero(), a2 = X::zero(), a3 = X::zero();
    std::size_t i = 0;
    for (; i + W <= dim; i += W) {
        const V qv = X::load(q + i);
        const V sv = scale_at<X, E>(s, i);
        a0 = E::template apply<X>(a0, qv, sv, D::template load<X>(c0 + i * B));
        a1 = E::template apply<X>(a1, qv, sv, D::template load<X>(c1 + i * B));
        a2 = E::template apply<X>(a2, qv, sv, D::template load<X>(c2 + i * B));
        a3 = E::template apply<X>(a3, qv, sv, D::template load<X>(c3 + i * B));
    }
    if (i < dim) {
        const std::size_t n = dim - i;
        const V qv = X::load_partial(q + i, n);
        const V sv = scale_partial<X, E>(s, i, n);
        a0 = E::template apply<X>(a0, qv, sv, D::template load_partial<X>(c0 + i * B, n));
        a1 = E::template apply<X>(a1, qv, sv, D::template load_partial<X>(c1 + i * B, n));
        a2 = E::template apply<X>(a2, qv, sv, D::template load_partial<X>(c2 + i * B, n));
        a3 = E::template apply<X>(a3, qv, sv, D::template load_partial<X>(c3 + i * B, n));
    }
    out[0] = X::reduce(a0);
    out[1] = X::reduce(a1);
    out[2] = X::reduce(a2);
    out[3] = X::reduce(a3);
}

// ---- 4-bit layout (quant_kernels.hpp): per block, low nibbles -> dims [0, h), high -> [h, r) ---

// Visits one block of r dimensions starting at query offset `base` whose codes start at `c`:
// calls full(k, lo_off, hi_off) for whole W-byte steps and part(k, nlo, nhi) for the last one.
template <std::size_t W, class Full, class Part>
void nibble_block_steps(std::size_t r, const Full& full, const Part& part) noexcept {
    const std::size_t h = (r + 1) / 2; // bytes in this block = dims in the low half
    const std::size_t nh = r - h;      // dims in the high half
    std::size_t k = 0;
    for (; k + W <= nh; k += W)
        full(k, h);
    for (; k < h; k += W) {
        const std::size_t nlo = h - k < W ? h - k : W;
        const std::size_t nhi = nh > k ? (nh - k < W ? nh - k : W) : 0;
        part(k, h, nlo, nhi);
    }
}

template <class X, class E>
float nibble_pair(const float* q, const float* s, const std::uint8_t* c, std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    V a0 = X::zero(), a1 = X::zero(), a2 = X::zero(), a3 = X::zero();
    std::size_t base = 0;
    for (; base + kNibbleBlock <= dim; base += kNibbleBlock, c += kNibbleBlock / 2) {
        for (std::size_t k = 0; k < kNibbleBlock / 2; k += 2 * W) {
            const std::size_t lo = base + k, hi = base + kNibbleBlock / 2 + k;
            a0 = E::template apply<X>(a0, X::load(q + lo), scale_at<X, E>(s, lo), X::nib_lo(c + k));
            a1 = E::template apply<X>(a1, X::load(q + hi), scale_at<X, E>(s, hi), X::nib_hi(c + k));
            a2 = E::template apply<X>(a2, X::load(q + lo + W), scale_at<X, E>(s, lo + W),
                                      X::nib_lo(c + k + W));
            a3 = E::template apply<X>(a3, X::load(q + hi + W), scale_at<X, E>(s, hi + W),
                                      X::nib_hi(c + k + W));
        }
    }
    if (base < dim) {
        nibble_block_steps<W>(
            dim - base,
            [&](std::size_t k, std::size_t h) {
                const std::size_t lo = base + k, hi = base + h + k;
                a0 = E::template apply<X>(a0, X::load(q + lo), scale_at<X, E>(s, lo),
                                          X::nib_lo(c + k));
                a1 = E::template apply<X>(a1, X::load(q + hi), scale_at<X, E>(s, hi),
                                          X::nib_hi(c + k));
            },
            [&](std::size_t k, std::size_t h, std::size_t nlo, std::size_t nhi) {
                const std::size_t lo = base + k, hi = base + h + k;
                a2 = E::template apply<X>(a2, X::load_partial(q + lo, nlo),
                                          scale_partial<X, E>(s, lo, nlo),
                                          X::nib_lo_partial(c + k, nlo));
                if (nhi) {
                    a3 = E::template apply<X>(a3, X::load_partial(q + hi, nhi),
                                              scale_partial<X, E>(s, hi, nhi),
                                              X::nib_hi_partial(c + k, nlo));
                }
            });
    }
    return X::reduce(X::add(X::add(a0, a1), X::add(a2, a3)));
}

template <class X, class E>
void nibble_four(const float* q, const float* s, const std::uint8_t* const* c, std::size_t dim,
                 float* out) noexcept {
    if constexpr (Pairwise<X>::value) {
        for (int r = 0; r < 4; ++r)
            out[r] = nibble_pair<X, E>(q, s, c[r], dim);
        return;
    }
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    V a[4] = {X::zero(), X::zero(), X::zero(), X::zero()};
    std::size_t base = 0, off = 0; // query offset, code byte offset
    for (; base + kNibbleBlock <= dim; base += kNibbleBlock, off += kNibbleBlock / 2) {
        for (std::size_t k = 0; k < kNibbleBlock / 2; k += W) {
            const std::size_t lo = base + k, hi = base + kNibbleBlock / 2 + k;
            const V ql = X::load(q + lo), qh = X::load(q + hi);
            const V sl = scale_at<X, E>(s, lo), sh = scale_at<X, E>(s, hi);
            for (int r = 0; r < 4; ++r) {
                a[r] = E::template apply<X>(a[r], ql, sl, X::nib_lo(c[r] + off + k));
                a[r] = E::template apply<X>(a[r], qh, sh, X::nib_hi(c[r] + off + k));
            }
        }
    }
    if (base < dim) {
        nibble_block_steps<W>(
            dim - base,
            [&](std::size_t k, std::size_t h) {
                const std::size_t lo = base + k, hi = base + h + k;
                const V ql = X::load(q + lo), qh = X::load(q + hi);
                const V sl = scale_at<X, E>(s, lo), sh = scale_at<X, E>(s, hi);
                for (int r = 0; r < 4; ++r) {
                    a[r] = E::template apply<X>(a[r], ql, sl, X::nib_lo(c[r] + off + k));
                    a[r] = E::template apply<X>(a[r], qh, sh, X::nib_hi(c[r] + off + k));
                }
            },
            [&](std::size_t k, std::size_t h, std::size_t nlo, std::size_t nhi) {
                const std::size_t lo = base + k, hi = base + h + k;
                const V ql = X::load_partial(q + lo, nlo);
                const V sl = scale_partial<X, E>(s, lo, nlo);
                const V qh = nhi ? X::load_partial(q + hi, nhi) : X::zero();
                const V sh = nhi ? scale_partial<X, E>(s, hi, nhi) : X::zero();
                for (int r = 0; r < 4; ++r) {
                    const std::uint8_t* p = c[r] + off + k;
                    a[r] = E::template apply<X>(a[r], ql, sl, X::nib_lo_partial(p, nlo));
                    if (nhi)
                        a[r] = E::template apply<X>(a[r], qh, sh, X::nib_hi_partial(p, nlo));
                }
            });
    }
    for (int r = 0; r < 4; ++r)
        out[r] = X::reduce(a[r]);
}

// ---- bf16 query x bf16 codes (portable form; the AVX-512 BF16 unit has vdpbf16ps) ----------

template <class X>
float bf16_bf16_pair_t(const std::uint16_t* q, const float*, const std::uint8_t* c,
                       std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    const std::uint8_t* qb = reinterpret_cast<const std::uint8_t*>(q);
    V a0 = X::zero(), a1 = X::zero();
    std::size_t i = 0;
    for (; i + 2 * W <= dim; i += 2 * W) {
        a0 = X::fmadd(X::from_bf16(qb + 2 * i), X::from_bf16(c + 2 * i), a0);
        a1 = X::fmadd(X::from_bf16(qb + 2 * (i + W)), X::from_bf16(c + 2 * (i + W)), a1);
    }
    for (; i < dim; i += W) {
        const std::size_t n = dim - i < W ? dim - i : W;
        a0 = X::fmadd(X::from_bf16_partial(qb + 2 * i, n), X::from_bf16_partial(c + 2 * i, n), a0);
    }
    return X::reduce(X::add(a0, a1));
}

template <class X>
void bf16_bf16_four_t(const std::uint16_t* q, const float* s, const std::uint8_t* const* c,
                      std::size_t dim, float* out) noexcept {
    for (int r = 0; r < 4; ++r)
        out[r] = bf16_bf16_pair_t<X>(q, s, c[r], dim);
}

// ---- conversions ------------------------------------------------------------------------

template <class X>
void convert_to_f16(const float* in, std::uint16_t* out, std::size_t n) noexcept {
    constexpr std::size_t W = X::W;
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        X::to_f16(out + i, X::load(in + i));
    if (i < n)
        X::to_f16_partial(out + i, X::load_partial(in + i, n - i), n - i);
}

template <class X>
void convert_to_bf16(const float* in, std::uint16_t* out, std::size_t n) noexcept {
    constexpr std::size_t W = X::W;
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        X::to_bf16(out + i, X::load(in + i));
    if (i < n)
        X::to_bf16_partial(out + i, X::load_partial(in + i, n - i), n - i);
}

template <class X, class D>
void convert_from_half(const std::uint16_t* in, float* out, std::size_t n) noexcept {
    constexpr std::size_t W = X::W;
    const std::uint8_t* p = reinterpret_cast<const std::uint8_t*>(in);
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        X::store(out + i, D::template load<X>(p + 2 * i));
    if (i < n)
        X::store_partial(out + i, D::template load_partial<X>(p + 2 * i, n - i), n - i);
}

template <class X> void fill_float_quant(QuantKernels& k, Isa isa) noexcept {
    using F = float;
    k.f32_to_f16 = {&convert_to_f16<X>, isa};
    k.f32_to_bf16 = {&convert_to_bf16<X>, isa};
    k.f16_to_f32 = {&convert_from_half<X, DecF16>, isa};
    k.bf16_to_f32 = {&convert_from_half<X, DecBF16>, isa};
    set_code_kernel<F, F, &dense_pair<X, DecF16, CombDot>, &dense_four<X, DecF16, CombDot>, 2, 1>(
        k.f16_dot, isa);
    set_code_kernel<F, F, &dense_pair<X, DecF16, CombL2>, &dense_four<X, DecF16, CombL2>, 2, 1>(
        k.f16_l2sq, isa);
    set_code_kernel<F, F, &dense_pair<X, DecBF16, CombDot>, &dense_four<X, DecBF16, CombDot>, 2, 1>(
        k.bf16_dot, isa);
    set_code_kernel<F, F, &dense_pair<X, DecBF16, CombL2>, &dense_four<X, DecBF16, CombL2>, 2, 1>(
        k.bf16_l2sq, isa);
    set_code_kernel<F, F, &dense_pair<X, DecU8, CombDot>, &dense_four<X, DecU8, CombDot>, 1, 1>(
        k.u8_dot, isa);
    set_code_kernel<F, F, &dense_pair<X, DecU8, CombL2Scaled>, &dense_four<X, DecU8, CombL2Scaled>,
                    1, 1>(k.u8_l2sq, isa);
    set_code_kernel<F, F, &nibble_pair<X, CombDot>, &nibble_four<X, CombDot>, 1, 2>(k.u4_dot, isa);
    set_code_kernel<F, F, &nibble_pair<X, CombL2Scaled>, &nibble_four<X, CombL2Scaled>, 1, 2>(
        k.u4_l2sq, isa);
    set_code_kernel<std::uint16_t, F, &bf16_bf16_pair_t<X>, &bf16_bf16_four_t<X>, 2, 1>(
        k.bf16_dot_bf16, isa);
}
