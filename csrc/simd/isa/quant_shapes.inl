// The many and batch shapes of a code kernel, built from its pair form and a four-codes form.
//
// Included by simd/isa/quant_*.cpp *inside an anonymous namespace* (internal linkage, compiled
// with that unit's flags only; see generic_kernels.inl for the ODR reasoning), before
// quant_float_kernels.inl / quant_int_kernels.inl. No include guard, no namespace, no STL.
//
// Four codes at a time: each of the four keeps its own accumulators, and the query (and scale)
// elements are loaded once per step for all four, so a step costs 1 + 4 loads instead of 8 and
// four independent memory streams are in flight - what a graph search's neighbour list needs,
// without gather instructions.

template <typename Q, typename R, R (*Pair)(const Q*, const float*, const std::uint8_t*,
                                            std::size_t) noexcept,
          void (*Four)(const Q*, const float*, const std::uint8_t* const*, std::size_t,
                       R*) noexcept>
void code_batch(const Q* q, const float* s, const std::uint8_t* const* codes, std::size_t n,
                std::size_t dim, R* out) noexcept {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) Four(q, s, codes + i, dim, out + i);
    for (; i < n; ++i) out[i] = Pair(q, s, codes[i], dim);
}

template <typename Q, typename R, R (*Pair)(const Q*, const float*, const std::uint8_t*,
                                            std::size_t) noexcept,
          void (*Four)(const Q*, const float*, const std::uint8_t* const*, std::size_t,
                       R*) noexcept>
void code_many(const Q* q, const float* s, const std::uint8_t* codes, std::size_t stride,
               std::size_t n, std::size_t dim, R* out) noexcept {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const std::uint8_t* p[4] = {codes + i * stride, codes + (i + 1) * stride,
                                    codes + (i + 2) * stride, codes + (i + 3) * stride};
        Four(q, s, p, dim, out + i);
    }
    for (; i < n; ++i) out[i] = Pair(q, s, codes + i * stride, dim);
}

template <typename Q, typename R, R (*Pair)(const Q*, const float*, const std::uint8_t*,
                                            std::size_t) noexcept,
          void (*Four)(const Q*, const float*, const std::uint8_t* const*, std::size_t,
                       R*) noexcept>
void set_code_kernel(CodeKernel<Q, R>& k, Isa isa) noexcept {
    k.pair = {Pair, isa};
    k.many = {&code_many<Q, R, Pair, Four>, isa};
    k.batch = {&code_batch<Q, R, Pair, Four>, isa};
}
