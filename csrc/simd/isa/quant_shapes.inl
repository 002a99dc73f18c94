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
//
// The batch shape also prefetches: codes reached through a neighbour list are random accesses,
// and a kernel whose loop has many instructions per cache line (the float-decoding ones) lets
// the out-of-order window see only the first lines of the next codes. Every line of the codes
// two groups ahead is prefetched before a group is scored (measured on 100 MB of vectors: about
// 2x fewer ns per code for the float kernels at d = 784; the integer ones gain less).
// BytesNum / BytesDen: code bytes per dimension (f16 2/1, u8 1/1, u4 1/2).

#if defined(__GNUC__) || defined(__clang__)
#define PYSIM_QUANT_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#elif defined(_M_X64)
#define PYSIM_QUANT_PREFETCH(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0)
#else
#define PYSIM_QUANT_PREFETCH(p) ((void)(p))
#endif

// Traits may set `static constexpr bool kPairwise = true` to have the four-codes forms run the
// pair kernel four times instead: the portable unit, where four interleaved streams of
// 4-lane arrays only add register pressure (measured 2-3x slower than four pair calls).
template <class T, class = void> struct Pairwise {
    static constexpr bool value = false;
};
template <class T> struct Pairwise<T, decltype(void(T::kPairwise))> {
    static constexpr bool value = T::kPairwise;
};

template <std::size_t BytesNum, std::size_t BytesDen>
void prefetch_codes(const std::uint8_t* const* codes, std::size_t count, std::size_t dim) noexcept {
    const std::size_t bytes = (dim * BytesNum + BytesDen - 1) / BytesDen;
    for (std::size_t r = 0; r < count; ++r) {
        const std::uint8_t* p = codes[r];
        const std::uint8_t* end = p + bytes;
        // Every 64-byte line the code touches, the first one included even when p is not
        // line-aligned (p + 64 * k may skip the last line, so the end is prefetched too).
        for (; p < end; p += 64)
            PYSIM_QUANT_PREFETCH(p);
        PYSIM_QUANT_PREFETCH(end - 1);
    }
}

template <typename Q, typename R,
          R (*Pair)(const Q*, const float*, const std::uint8_t*, std::size_t) noexcept,
          void (*Four)(const Q*, const float*, const std::uint8_t* const*, std::size_t,
                       R*) noexcept,
          std::size_t BytesNum, std::size_t BytesDen>
void code_batch(const Q* q, const float* s, const std::uint8_t* const* codes, std::size_t n,
                std::size_t dim, R* out) noexcept {
    prefetch_codes<BytesNum, BytesDen>(codes, n < 8 ? n : 8, dim);
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        if (i + 8 < n) {
            prefetch_codes<BytesNum, BytesDen>(codes + i + 8, n - i - 8 < 4 ? n - i - 8 : 4, dim);
        }
        Four(q, s, codes + i, dim, out + i);
    }
    for (; i < n; ++i)
        out[i] = Pair(q, s, codes[i], dim);
}

template <typename Q, typename R,
          R (*Pair)(const Q*, const float*, const std::uint8_t*, std::size_t) noexcept,
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
    for (; i < n; ++i)
        out[i] = Pair(q, s, codes + i * stride, dim);
}

template <typename Q, typename R,
          R (*Pair)(const Q*, const float*, const std::uint8_t*, std::size_t) noexcept,
          void (*Four)(const Q*, const float*, const std::uint8_t* const*, std::size_t,
                       R*) noexcept,
          std::size_t BytesNum, std::size_t BytesDen>
void set_code_kernel(CodeKernel<Q, R>& k, Isa isa) noexcept {
    k.pair = {Pair, isa};
    k.many = {&code_many<Q, R, Pair, Four>, isa};
    k.batch = {&code_batch<Q, R, Pair, Four, BytesNum, BytesDen>, isa};
}
