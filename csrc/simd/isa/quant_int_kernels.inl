// Exact integer kernels over u8 and u4 codes, written once against integer traits.
//
// Included by simd/isa/quant_*.cpp inside an anonymous namespace, after quant_shapes.inl and
// (for the 4-bit block walk) quant_float_kernels.inl's nibble_block_steps, or after defining
// PYSIM_QUANT_INT_ONLY, which pulls in a private copy of it. No STL, no include guard.
//
// The integer traits of the quant_*.cpp files look alike by design (duplicates reports them as
// same-shape pairs): each is one instruction set's few-line vocabulary, the only per-ISA code;
// the kernels built on them are written once, here.
//
// Every sum is an exact int32 (bounds in quant_kernels.hpp), so any order, any tail handling
// and any ISA give the same result; the traits may use whatever instructions are exact there.
//
// Traits interface (Y):
//   IV                          integer accumulator (lanes of int32, or a pair of them)
//   IB8                         dimensions per step of the u8 kernels
//   IB4                         code bytes per step of the u4 kernels (must divide 64)
//   izero(), iadd(a, b), ireduce(v) -> int32
//   dot_u8(acc, c, t) / dot_u8_partial(acc, c, t, n)       sum c_j * t_j   (u8 x s8)
//   l2_u8(acc, a, b) / l2_u8_partial(acc, a, b, n)         sum (a_j - b_j)^2
//   dot_u4(acc, c, tlo, thi) / dot_u4_partial(acc, c, tlo, thi, nlo, nhi)
//        low nibbles of IB4 (nlo) code bytes times tlo, high nibbles times thi (nhi valid)
//   l2_u4(acc, a, b) / l2_u4_partial(acc, a, b, n)         both nibbles of IB4 (n) bytes

#if defined(PYSIM_QUANT_INT_ONLY)
template <std::size_t W, class Full, class Part>
void nibble_block_steps(std::size_t r, const Full& full, const Part& part) noexcept {
    const std::size_t h = (r + 1) / 2;
    const std::size_t nh = r - h;
    std::size_t k = 0;
    for (; k + W <= nh; k += W)
        full(k, h);
    for (; k < h; k += W) {
        const std::size_t nlo = h - k < W ? h - k : W;
        const std::size_t nhi = nh > k ? (nh - k < W ? nh - k : W) : 0;
        part(k, h, nlo, nhi);
    }
}
#endif

template <class Y>
std::int32_t u8_dot_pair(const std::int8_t* t, const float*, const std::uint8_t* c,
                         std::size_t dim) noexcept {
    constexpr std::size_t B = Y::IB8;
    typename Y::IV a0 = Y::izero(), a1 = Y::izero();
    std::size_t i = 0;
    for (; i + 2 * B <= dim; i += 2 * B) {
        a0 = Y::dot_u8(a0, c + i, t + i);
        a1 = Y::dot_u8(a1, c + i + B, t + i + B);
    }
    for (; i + B <= dim; i += B)
        a0 = Y::dot_u8(a0, c + i, t + i);
    if (i < dim)
        a1 = Y::dot_u8_partial(a1, c + i, t + i, dim - i);
    return Y::ireduce(Y::iadd(a0, a1));
}

template <class Y>
void u8_dot_four(const std::int8_t* t, const float*, const std::uint8_t* const* c, std::size_t dim,
                 std::int32_t* out) noexcept {
    if constexpr (Pairwise<Y>::value) {
        for (int r = 0; r < 4; ++r)
            out[r] = u8_dot_pair<Y>(t, nullptr, c[r], dim);
        return;
    }
    constexpr std::size_t B = Y::IB8;
    typename Y::IV a[4] = {Y::izero(), Y::izero(), Y::izero(), Y::izero()};
    typename Y::IV b[4] = {Y::izero(), Y::izero(), Y::izero(), Y::izero()};
    std::size_t i = 0;
    for (; i + 2 * B <= dim; i += 2 * B) {
        for (int r = 0; r < 4; ++r)
            a[r] = Y::dot_u8(a[r], c[r] + i, t + i);
        for (int r = 0; r < 4; ++r)
            b[r] = Y::dot_u8(b[r], c[r] + i + B, t + i + B);
    }
    for (; i + B <= dim; i += B)
        for (int r = 0; r < 4; ++r)
            a[r] = Y::dot_u8(a[r], c[r] + i, t + i);
    if (i < dim)
        for (int r = 0; r < 4; ++r)
            b[r] = Y::dot_u8_partial(b[r], c[r] + i, t + i, dim - i);
    for (int r = 0; r < 4; ++r)
        out[r] = Y::ireduce(Y::iadd(a[r], b[r]));
}

template <class Y>
std::int32_t u8_l2_pair(const std::uint8_t* q, const float*, const std::uint8_t* c,
                        std::size_t dim) noexcept {
    constexpr std::size_t B = Y::IB8;
    typename Y::IV a0 = Y::izero(), a1 = Y::izero();
    std::size_t i = 0;
    for (; i + 2 * B <= dim; i += 2 * B) {
        a0 = Y::l2_u8(a0, q + i, c + i);
        a1 = Y::l2_u8(a1, q + i + B, c + i + B);
    }
    for (; i + B <= dim; i += B)
        a0 = Y::l2_u8(a0, q + i, c + i);
    if (i < dim)
        a1 = Y::l2_u8_partial(a1, q + i, c + i, dim - i);
    return Y::ireduce(Y::iadd(a0, a1));
}

template <class Y>
void u8_l2_four(const std::uint8_t* q, const float*, const std::uint8_t* const* c, std::size_t dim,
                std::int32_t* out) noexcept {
    if constexpr (Pairwise<Y>::value) {
        for (int r = 0; r < 4; ++r)
            out[r] = u8_l2_pair<Y>(q, nullptr, c[r], dim);
        return;
    }
    constexpr std::size_t B = Y::IB8;
    typename Y::IV a[4] = {Y::izero(), Y::izero(), Y::izero(), Y::izero()};
    std::size_t i = 0;
    for (; i + B <= dim; i += B)
        for (int r = 0; r < 4; ++r)
            a[r] = Y::l2_u8(a[r], q + i, c[r] + i);
    if (i < dim)
        for (int r = 0; r < 4; ++r)
            a[r] = Y::l2_u8_partial(a[r], q + i, c[r] + i, dim - i);
    for (int r = 0; r < 4; ++r)
        out[r] = Y::ireduce(a[r]);
}

// Blocks alternate between two accumulators so consecutive steps do not wait on each other.
template <class Y>
std::int32_t u4_dot_pair(const std::int8_t* t, const float*, const std::uint8_t* c,
                         std::size_t dim) noexcept {
    typename Y::IV a[2] = {Y::izero(), Y::izero()};
    std::size_t step = 0;
    for (std::size_t base = 0; base < dim; base += kNibbleBlock, c += kNibbleBlock / 2) {
        const std::size_t r = dim - base < kNibbleBlock ? dim - base : kNibbleBlock;
        nibble_block_steps<Y::IB4>(
            r,
            [&](std::size_t k, std::size_t h) {
                typename Y::IV& acc = a[step++ & 1];
                acc = Y::dot_u4(acc, c + k, t + base + k, t + base + h + k);
            },
            [&](std::size_t k, std::size_t h, std::size_t nlo, std::size_t nhi) {
                typename Y::IV& acc = a[step++ & 1];
                acc = Y::dot_u4_partial(acc, c + k, t + base + k, t + base + h + k, nlo, nhi);
            });
    }
    return Y::ireduce(Y::iadd(a[0], a[1]));
}

template <class Y>
void u4_dot_four(const std::int8_t* t, const float*, const std::uint8_t* const* c, std::size_t dim,
                 std::int32_t* out) noexcept {
    if constexpr (Pairwise<Y>::value) {
        for (int r = 0; r < 4; ++r)
            out[r] = u4_dot_pair<Y>(t, nullptr, c[r], dim);
        return;
    }
    typename Y::IV a[4] = {Y::izero(), Y::izero(), Y::izero(), Y::izero()};
    std::size_t off = 0;
    for (std::size_t base = 0; base < dim; base += kNibbleBlock, off += kNibbleBlock / 2) {
        const std::size_t r = dim - base < kNibbleBlock ? dim - base : kNibbleBlock;
        nibble_block_steps<Y::IB4>(
            r,
            [&](std::size_t k, std::size_t h) {
                for (int j = 0; j < 4; ++j)
                    a[j] = Y::dot_u4(a[j], c[j] + off + k, t + base + k, t + base + h + k);
            },
            [&](std::size_t k, std::size_t h, std::size_t nlo, std::size_t nhi) {
                for (int j = 0; j < 4; ++j)
                    a[j] = Y::dot_u4_partial(a[j], c[j] + off + k, t + base + k, t + base + h + k,
                                             nlo, nhi);
            });
    }
    for (int j = 0; j < 4; ++j)
        out[j] = Y::ireduce(a[j]);
}

// Both codes share the layout, so the squared nibble differences can be summed byte-wise.
template <class Y>
std::int32_t u4_l2_pair(const std::uint8_t* q, const float*, const std::uint8_t* c,
                        std::size_t dim) noexcept {
    constexpr std::size_t B = Y::IB4;
    const std::size_t bytes = (dim + 1) / 2;
    typename Y::IV a0 = Y::izero(), a1 = Y::izero();
    std::size_t i = 0;
    for (; i + 2 * B <= bytes; i += 2 * B) {
        a0 = Y::l2_u4(a0, q + i, c + i);
        a1 = Y::l2_u4(a1, q + i + B, c + i + B);
    }
    for (; i + B <= bytes; i += B)
        a0 = Y::l2_u4(a0, q + i, c + i);
    if (i < bytes)
        a1 = Y::l2_u4_partial(a1, q + i, c + i, bytes - i);
    return Y::ireduce(Y::iadd(a0, a1));
}

template <class Y>
void u4_l2_four(const std::uint8_t* q, const float*, const std::uint8_t* const* c, std::size_t dim,
                std::int32_t* out) noexcept {
    if constexpr (Pairwise<Y>::value) {
        for (int r = 0; r < 4; ++r)
            out[r] = u4_l2_pair<Y>(q, nullptr, c[r], dim);
        return;
    }
    constexpr std::size_t B = Y::IB4;
    const std::size_t bytes = (dim + 1) / 2;
    typename Y::IV a[4] = {Y::izero(), Y::izero(), Y::izero(), Y::izero()};
    std::size_t i = 0;
    for (; i + B <= bytes; i += B)
        for (int r = 0; r < 4; ++r)
            a[r] = Y::l2_u4(a[r], q + i, c[r] + i);
    if (i < bytes)
        for (int r = 0; r < 4; ++r)
            a[r] = Y::l2_u4_partial(a[r], q + i, c[r] + i, bytes - i);
    for (int r = 0; r < 4; ++r)
        out[r] = Y::ireduce(a[r]);
}

template <class Y> void fill_int_quant(QuantKernels& k, Isa isa) noexcept {
    using I8 = std::int8_t;
    using U8 = std::uint8_t;
    using I32 = std::int32_t;
    set_code_kernel<I8, I32, &u8_dot_pair<Y>, &u8_dot_four<Y>, 1, 1>(k.u8_dot_i8, isa);
    set_code_kernel<I8, I32, &u4_dot_pair<Y>, &u4_dot_four<Y>, 1, 2>(k.u4_dot_i8, isa);
    set_code_kernel<U8, I32, &u8_l2_pair<Y>, &u8_l2_four<Y>, 1, 1>(k.u8_l2sq_u8, isa);
    set_code_kernel<U8, I32, &u4_l2_pair<Y>, &u4_l2_four<Y>, 1, 2>(k.u4_l2sq_u4, isa);
}
