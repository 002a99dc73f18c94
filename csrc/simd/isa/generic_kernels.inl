// Kernel bodies shared by every ISA, written once against a small "vector traits" interface.
//
// Each file in this folder defines traits structs F32 and F64 for its instruction set and then
// includes this file *inside an anonymous namespace*. Every function here therefore has internal
// linkage in that translation unit and is compiled with that unit's -m flags only: the linker can
// never merge an AVX-512 instantiation into code that runs on an older CPU (the ODR hazard of
// templates and inline functions in ISA units). That is why this is an .inl with no include
// guard and no namespace of its own, and why it uses no STL.
//
// Traits interface (X):
//   T, V                      scalar type and vector type
//   W                         lanes per vector;  MR  rows per register block of the tile kernel
//   zero(), set1(s), load(p), load_partial(p, count), store(p, v), store_partial(p, v, count)
//   add, sub, mul, fmadd(a, b, c) = a * b + c, max, min, sqrt, reduce(v) = sum of lanes
//   lt_mask(a, b)             bit i set when lane i of a < lane i of b (false for NaN)
//   widen(p), widen_partial(p, count)   (float64 traits only) W floats at p -> W doubles
//
// The traits structs of the ISA files (and their F32 / F64 pairs) therefore have the same
// shape by design: they are each instruction set's few-line vocabulary of intrinsics, the only
// per-ISA code, and everything built on them lives here once.
//
// Layouts: pair and many kernels read plain rows. The tile kernel reads A rows in place
// (row stride lda) and B from panels of NR = 2 W rows packed dimension-major, so one k step
// loads two vectors of B and broadcasts MR values of A into MR x 2 accumulators (MR x 2 FMAs
// per 2 + MR loads: compute-bound). Epilogues are fused: every output is written once.

template <class X>
typename X::T pair_dot(const typename X::T* a, const typename X::T* b, std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    V acc0 = X::zero(), acc1 = X::zero(), acc2 = X::zero(), acc3 = X::zero();
    std::size_t i = 0;
    for (; i + 4 * W <= dim; i += 4 * W) {
        acc0 = X::fmadd(X::load(a + i), X::load(b + i), acc0);
        acc1 = X::fmadd(X::load(a + i + W), X::load(b + i + W), acc1);
        acc2 = X::fmadd(X::load(a + i + 2 * W), X::load(b + i + 2 * W), acc2);
        acc3 = X::fmadd(X::load(a + i + 3 * W), X::load(b + i + 3 * W), acc3);
    }
    for (; i + W <= dim; i += W)
        acc0 = X::fmadd(X::load(a + i), X::load(b + i), acc0);
    if (i < dim) {
        acc1 = X::fmadd(X::load_partial(a + i, dim - i), X::load_partial(b + i, dim - i), acc1);
    }
    return X::reduce(X::add(X::add(acc0, acc1), X::add(acc2, acc3)));
}

template <class X>
typename X::T pair_l2sq(const typename X::T* a, const typename X::T* b, std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    V acc0 = X::zero(), acc1 = X::zero(), acc2 = X::zero(), acc3 = X::zero();
    std::size_t i = 0;
    for (; i + 4 * W <= dim; i += 4 * W) {
        const V d0 = X::sub(X::load(a + i), X::load(b + i));
        const V d1 = X::sub(X::load(a + i + W), X::load(b + i + W));
        const V d2 = X::sub(X::load(a + i + 2 * W), X::load(b + i + 2 * W));
        const V d3 = X::sub(X::load(a + i + 3 * W), X::load(b + i + 3 * W));
        acc0 = X::fmadd(d0, d0, acc0);
        acc1 = X::fmadd(d1, d1, acc1);
        acc2 = X::fmadd(d2, d2, acc2);
        acc3 = X::fmadd(d3, d3, acc3);
    }
    for (; i + W <= dim; i += W) {
        const V d = X::sub(X::load(a + i), X::load(b + i));
        acc0 = X::fmadd(d, d, acc0);
    }
    if (i < dim) {
        const V d = X::sub(X::load_partial(a + i, dim - i), X::load_partial(b + i, dim - i));
        acc1 = X::fmadd(d, d, acc1);
    }
    return X::reduce(X::add(X::add(acc0, acc1), X::add(acc2, acc3)));
}

template <class X>
typename X::T pair_norm2(const typename X::T* a, const typename X::T*, std::size_t dim) noexcept {
    return pair_dot<X>(a, a, dim);
}

// The many kernels stream rows once, so one core is bound by how many cache-line misses it
// keeps in flight, and the hardware prefetcher alone kept too few: each row is requested
// kManyAheadBytes before it is scored (software prefetch, a hint that never faults past the
// end). On one query x 10^6 x 128 float32 rows (Zen 5): 26.7 -> 37.5 GB/s on one core, 38.8 ->
// 51 GB/s on two; 2 and 4 KiB ahead gave 31-37 GB/s on one core.
inline constexpr std::size_t kManyAheadBytes = 8192;
template <class T> inline void prefetch_ahead(const T* row, std::size_t bytes) noexcept {
    // Integer arithmetic: the address may lie past the end of the rows (no pointer is formed).
    const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(row) + kManyAheadBytes;
    for (std::size_t off = 0; off < bytes; off += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(p + off), 0, 0);
}

template <class X>
void many_dot(const typename X::T* q, const typename X::T* rows, std::size_t n, std::size_t dim,
              typename X::T* out) noexcept {
    for (std::size_t r = 0; r < n; ++r) {
        prefetch_ahead(rows + r * dim, dim * sizeof(typename X::T));
        out[r] = pair_dot<X>(q, rows + r * dim, dim);
    }
}

template <class X>
void many_l2sq(const typename X::T* q, const typename X::T* rows, std::size_t n, std::size_t dim,
               typename X::T* out) noexcept {
    for (std::size_t r = 0; r < n; ++r) {
        prefetch_ahead(rows + r * dim, dim * sizeof(typename X::T));
        out[r] = pair_l2sq<X>(q, rows + r * dim, dim);
    }
}

// Dimension-major panel (coordinate j of row i at rows[j * n + i]): W rows per vector, no
// horizontal reductions, and the sum for each row runs over j in order with a separate mul
// and add, the same arithmetic on every ISA (scalar included), so results never depend on
// the dispatch level. Two vectors per step give the out-of-order core two independent chains.
template <class X>
void panel_l2sq(const typename X::T* q, const typename X::T* rows, std::size_t n, std::size_t dim,
                typename X::T* out) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        V acc0 = X::zero(), acc1 = X::zero();
        for (std::size_t j = 0; j < dim; ++j) {
            const V qj = X::set1(q[j]);
            const V d0 = X::sub(X::load(rows + j * n + i), qj);
            const V d1 = X::sub(X::load(rows + j * n + i + W), qj);
            acc0 = X::add(acc0, X::mul(d0, d0));
            acc1 = X::add(acc1, X::mul(d1, d1));
        }
        X::store(out + i, acc0);
        X::store(out + i + W, acc1);
    }
    for (; i < n; i += W) {
        const std::size_t c = n - i < W ? n - i : W;
        V acc = X::zero();
        for (std::size_t j = 0; j < dim; ++j) {
            const V d = X::sub(X::load_partial(rows + j * n + i, c), X::set1(q[j]));
            acc = X::add(acc, X::mul(d, d));
        }
        if (c == W) {
            X::store(out + i, acc);
        } else {
            X::store_partial(out + i, acc, c);
        }
    }
}

template <class X>
void many_dot_norm(const typename X::T* q, const typename X::T* rows, std::size_t n,
                   std::size_t dim, typename X::T* dots, typename X::T* norms) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    for (std::size_t r = 0; r < n; ++r) {
        const typename X::T* b = rows + r * dim;
        prefetch_ahead(b, dim * sizeof(typename X::T));
        V d0 = X::zero(), d1 = X::zero(), n0 = X::zero(), n1 = X::zero();
        std::size_t i = 0;
        for (; i + 2 * W <= dim; i += 2 * W) {
            const V b0 = X::load(b + i), b1 = X::load(b + i + W);
            d0 = X::fmadd(X::load(q + i), b0, d0);
            d1 = X::fmadd(X::load(q + i + W), b1, d1);
            n0 = X::fmadd(b0, b0, n0);
            n1 = X::fmadd(b1, b1, n1);
        }
        for (; i < dim; i += W) {
            const std::size_t c = dim - i < W ? dim - i : W;
            const V b0 = X::load_partial(b + i, c);
            d0 = X::fmadd(X::load_partial(q + i, c), b0, d0);
            n0 = X::fmadd(b0, b0, n0);
        }
        dots[r] = X::reduce(X::add(d0, d1));
        norms[r] = X::reduce(X::add(n0, n1));
    }
}

template <class X>
void many_norms(const typename X::T* rows, std::size_t n, std::size_t dim,
                typename X::T* out) noexcept {
    for (std::size_t r = 0; r < n; ++r)
        out[r] = pair_dot<X>(rows + r * dim, rows + r * dim, dim);
}

template <class X>
void pack_panels(const typename X::T* b, std::size_t ldb, std::size_t n, std::size_t dim,
                 typename X::T* packed) noexcept {
    constexpr std::size_t NR = 2 * X::W;
    for (std::size_t j0 = 0; j0 < n; j0 += NR) {
        typename X::T* panel = packed + j0 * dim; // panels are NR * dim apart
        const std::size_t cols = n - j0 < NR ? n - j0 : NR;
        // A blocked transpose, KB dimensions at a time: the KB x NR slab of the panel being
        // written stays in L1 while each of the NR rows is read KB values at a time (row by
        // row over the whole dimension wrote each value to a different cache line).
        constexpr std::size_t KB = 16;
        for (std::size_t k0 = 0; k0 < dim; k0 += KB) {
            const std::size_t k1 = dim - k0 < KB ? dim : k0 + KB;
            for (std::size_t j = 0; j < cols; ++j) {
                const typename X::T* row = b + (j0 + j) * ldb;
                for (std::size_t k = k0; k < k1; ++k)
                    panel[k * NR + j] = row[k];
            }
            for (std::size_t j = cols; j < NR; ++j)
                for (std::size_t k = k0; k < k1; ++k)
                    panel[k * NR + j] = 0;
        }
    }
}

// pack_panels with an ISA's register transpose: Transpose(src, ld, dst, ldd) writes the TB x TB
// block of rows src[i * ld + k] (i, k < TB) as dst[k * ldd + i]. Full panels go through it
// TB rows and TB dimensions at a time, the last dim % TB dimensions element by element; a
// partial panel (fewer than NR rows left) takes pack_panels. Same values, same layout.
template <class X, std::size_t TB,
          void (*Transpose)(const typename X::T*, std::size_t, typename X::T*, std::size_t)>
void pack_panels_transposed(const typename X::T* b, std::size_t ldb, std::size_t n, std::size_t dim,
                            typename X::T* packed) noexcept {
    constexpr std::size_t NR = 2 * X::W;
    static_assert(NR % TB == 0, "the transpose block must divide the panel width");
    for (std::size_t j0 = 0; j0 < n; j0 += NR) {
        typename X::T* panel = packed + j0 * dim;
        if (n - j0 < NR) {
            pack_panels<X>(b + j0 * ldb, ldb, n - j0, dim, panel);
            continue;
        }
        const std::size_t body = dim / TB * TB;
        for (std::size_t h = 0; h < NR; h += TB) {
            const typename X::T* rows = b + (j0 + h) * ldb;
            for (std::size_t k = 0; k < body; k += TB)
                Transpose(rows + k, ldb, panel + k * NR + h, NR);
            for (std::size_t k = body; k < dim; ++k)
                for (std::size_t i = 0; i < TB; ++i)
                    panel[k * NR + h + i] = rows[i * ldb + k];
        }
    }
}

// One MR_ x NR block: rows a[0..MR_) against one packed panel, `cols` valid columns.
template <class X, std::size_t MR_>
void tile_block(const typename X::T* a, std::size_t lda, const typename X::T* panel,
                std::size_t dim, std::size_t cols, const TileArgs<typename X::T>& g,
                std::size_t row0, std::size_t col0) noexcept {
    using T = typename X::T;
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    constexpr std::size_t NR = 2 * W;
    // The accumulators start from the k = 0 products (dim >= 1; the same bits as fmadd onto
    // zero), not from zero: zero-initialised arrays became two memsets of the stack copies
    // per block, which at small dim (d = 16) cost as much as the block's arithmetic.
    V acc0[MR_], acc1[MR_];
    {
        const V b0 = X::load(panel);
        const V b1 = X::load(panel + W);
        for (std::size_t r = 0; r < MR_; ++r) {
            const V ar = X::set1(a[r * lda]);
            acc0[r] = X::mul(ar, b0);
            acc1[r] = X::mul(ar, b1);
        }
    }
    for (std::size_t k = 1; k < dim; ++k) {
        const V b0 = X::load(panel + k * NR);
        const V b1 = X::load(panel + k * NR + W);
        for (std::size_t r = 0; r < MR_; ++r) {
            const V ar = X::set1(a[r * lda + k]);
            acc0[r] = X::fmadd(ar, b0, acc0[r]);
            acc1[r] = X::fmadd(ar, b1, acc1[r]);
        }
    }
    const std::size_t c0 = cols < W ? cols : W;
    const std::size_t c1 = cols > W ? cols - W : 0;
    V bx0 = X::zero(), bx1 = X::zero();
    const bool needs_aux = g.epilogue >= Epilogue::l2sq;
    if (needs_aux) {
        bx0 = X::load_partial(g.b_aux + col0, c0);
        if (c1)
            bx1 = X::load_partial(g.b_aux + col0 + W, c1);
    }
    const V one = X::set1(T(1)), two = X::set1(T(2)), minus_two = X::set1(T(-2));
    const V zero = X::zero();
    for (std::size_t r = 0; r < MR_; ++r) {
        V v0 = acc0[r], v1 = acc1[r];
        switch (g.epilogue) {
        case Epilogue::dot:
            break;
        case Epilogue::ip:
            v0 = X::sub(one, v0);
            v1 = X::sub(one, v1);
            break;
        case Epilogue::l2sq:
        case Epilogue::l2: {
            const V ax = X::set1(g.a_aux[row0 + r]);
            v0 = X::max(zero, X::fmadd(minus_two, v0, X::add(ax, bx0)));
            v1 = X::max(zero, X::fmadd(minus_two, v1, X::add(ax, bx1)));
            if (g.epilogue == Epilogue::l2) {
                v0 = X::sqrt(v0);
                v1 = X::sqrt(v1);
            }
            break;
        }
        case Epilogue::cosine: {
            const V ax = X::set1(g.a_aux[row0 + r]);
            v0 = X::min(two, X::max(zero, X::sub(one, X::mul(X::mul(v0, ax), bx0))));
            v1 = X::min(two, X::max(zero, X::sub(one, X::mul(X::mul(v1, ax), bx1))));
            break;
        }
        }
        T* o = g.out + (row0 + r) * g.ldo + col0;
        if (cols == NR) {
            X::store(o, v0);
            X::store(o + W, v1);
        } else {
            X::store_partial(o, v0, c0);
            if (c1)
                X::store_partial(o + W, v1, c1);
        }
    }
}

template <class X, std::size_t R>
void tile_rows_rest(std::size_t rest, const typename X::T* a, std::size_t lda,
                    const typename X::T* panel, std::size_t dim, std::size_t cols,
                    const TileArgs<typename X::T>& g, std::size_t row0, std::size_t col0) noexcept {
    if constexpr (R > 0) {
        if (rest == R) {
            tile_block<X, R>(a, lda, panel, dim, cols, g, row0, col0);
        } else {
            tile_rows_rest<X, R - 1>(rest, a, lda, panel, dim, cols, g, row0, col0);
        }
    }
}

// Row blocks outer, panels inner: the MR x dim slice of A stays in L1 while the packed B block
// (sized by the caller to fit L2) streams through.
template <class X> void tile(const TileArgs<typename X::T>& g) noexcept {
    constexpr std::size_t NR = 2 * X::W;
    constexpr std::size_t MR = X::MR;
    std::size_t i0 = 0;
    for (; i0 + MR <= g.m; i0 += MR) {
        for (std::size_t j0 = 0; j0 < g.n; j0 += NR) {
            const std::size_t cols = g.n - j0 < NR ? g.n - j0 : NR;
            tile_block<X, MR>(g.a + i0 * g.lda, g.lda, g.packed_b + j0 * g.dim, g.dim, cols, g, i0,
                              j0);
        }
    }
    if (i0 < g.m) {
        for (std::size_t j0 = 0; j0 < g.n; j0 += NR) {
            const std::size_t cols = g.n - j0 < NR ? g.n - j0 : NR;
            tile_rows_rest<X, MR - 1>(g.m - i0, g.a + i0 * g.lda, g.lda, g.packed_b + j0 * g.dim,
                                      g.dim, cols, g, i0, j0);
        }
    }
}

// Two vectors per step; a zero mask (the common case) costs one branch for 2 W columns.
template <class X>
std::size_t scan_lt(const typename X::T* row, const typename X::T* thr, std::size_t n,
                    std::uint32_t* hits) noexcept {
    constexpr std::size_t W = X::W;
    std::size_t count = 0, c = 0;
    for (; c + 2 * W <= n; c += 2 * W) {
        const std::uint32_t mask = X::lt_mask(X::load(row + c), X::load(thr + c)) |
                                   (X::lt_mask(X::load(row + c + W), X::load(thr + c + W)) << W);
        if (mask == 0)
            continue;
        for (std::size_t b = 0; b < 2 * W; ++b)
            if ((mask >> b) & 1u)
                hits[count++] = static_cast<std::uint32_t>(c + b);
    }
    for (; c < n; ++c)
        if (row[c] < thr[c])
            hits[count++] = static_cast<std::uint32_t>(c);
    return count;
}

// Mixed precision (kernels.hpp): X is a float64 traits struct with widen(p) / widen_partial(p,
// count), W floats -> W doubles. The same accumulator layout as pair_dot.
template <class X> double widen_dot(const float* a, const double* b, std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    V acc0 = X::zero(), acc1 = X::zero(), acc2 = X::zero(), acc3 = X::zero();
    std::size_t i = 0;
    for (; i + 4 * W <= dim; i += 4 * W) {
        acc0 = X::fmadd(X::widen(a + i), X::load(b + i), acc0);
        acc1 = X::fmadd(X::widen(a + i + W), X::load(b + i + W), acc1);
        acc2 = X::fmadd(X::widen(a + i + 2 * W), X::load(b + i + 2 * W), acc2);
        acc3 = X::fmadd(X::widen(a + i + 3 * W), X::load(b + i + 3 * W), acc3);
    }
    for (; i + W <= dim; i += W)
        acc0 = X::fmadd(X::widen(a + i), X::load(b + i), acc0);
    if (i < dim) {
        acc1 = X::fmadd(X::widen_partial(a + i, dim - i), X::load_partial(b + i, dim - i), acc1);
    }
    return X::reduce(X::add(X::add(acc0, acc1), X::add(acc2, acc3)));
}

template <class X> void widen_axpy(double s, const float* a, double* y, std::size_t dim) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    const V sv = X::set1(s);
    std::size_t i = 0;
    for (; i + 2 * W <= dim; i += 2 * W) {
        const V y0 = X::fmadd(sv, X::widen(a + i), X::load(y + i));
        const V y1 = X::fmadd(sv, X::widen(a + i + W), X::load(y + i + W));
        X::store(y + i, y0);
        X::store(y + i + W, y1);
    }
    for (; i < dim; i += W) {
        const std::size_t c = dim - i < W ? dim - i : W;
        X::store_partial(y + i, X::fmadd(sv, X::widen_partial(a + i, c), X::load_partial(y + i, c)),
                         c);
    }
}

// Gram of row-major rows, upper triangle: x[k, a0 .. a0 + R) are broadcast (contiguous in a
// row) against two vectors of x[k, b0 .. b0 + NR), so no operand is packed or transposed. Every
// block is a full R x NR one: the columns past dim read the next row's first values (or the
// caller's padding) into G's padding columns, which the caller ignores. (A masked-load variant
// for the last columns made GCC keep the accumulators on the stack: twice the time at d = 50.)
// G's block is loaded, accumulated over the rows in order and stored back; the caller hands the
// rows over in L1-sized blocks.
template <class X, std::size_t R, bool Two>
void gram_block(const typename X::T* x, std::size_t ld, std::size_t rows, std::size_t a0,
                std::size_t b0, typename X::T* G, std::size_t ldg) noexcept {
    using V = typename X::V;
    constexpr std::size_t W = X::W;
    V acc0[R], acc1[R];
    for (std::size_t r = 0; r < R; ++r) {
        acc0[r] = X::load(G + (a0 + r) * ldg + b0);
        if (Two)
            acc1[r] = X::load(G + (a0 + r) * ldg + b0 + W);
    }
    for (std::size_t k = 0; k < rows; ++k) {
        const typename X::T* xk = x + k * ld;
        const V b0v = X::load(xk + b0);
        const V b1v = Two ? X::load(xk + b0 + W) : b0v;
        for (std::size_t r = 0; r < R; ++r) {
            const V ar = X::set1(xk[a0 + r]);
            acc0[r] = X::fmadd(ar, b0v, acc0[r]);
            if (Two)
                acc1[r] = X::fmadd(ar, b1v, acc1[r]);
        }
    }
    for (std::size_t r = 0; r < R; ++r) {
        X::store(G + (a0 + r) * ldg + b0, acc0[r]);
        if (Two)
            X::store(G + (a0 + r) * ldg + b0 + W, acc1[r]);
    }
}

// R x 2W blocks while more than W columns remain, then one R x W block.
template <class X, std::size_t R>
void gram_row_block(const typename X::T* x, std::size_t ld, std::size_t rows, std::size_t a0,
                    std::size_t dim, typename X::T* G, std::size_t ldg) noexcept {
    constexpr std::size_t W = X::W;
    for (std::size_t b0 = a0; b0 < dim; b0 += 2 * W) {
        if (dim - b0 > W) {
            gram_block<X, R, true>(x, ld, rows, a0, b0, G, ldg);
        } else {
            gram_block<X, R, false>(x, ld, rows, a0, b0, G, ldg);
        }
    }
}

template <class X, std::size_t R>
void gram_rows_rest(std::size_t rest, const typename X::T* x, std::size_t ld, std::size_t rows,
                    std::size_t a0, std::size_t dim, typename X::T* G, std::size_t ldg) noexcept {
    if constexpr (R > 0) {
        if (rest == R) {
            gram_row_block<X, R>(x, ld, rows, a0, dim, G, ldg);
        } else {
            gram_rows_rest<X, R - 1>(rest, x, ld, rows, a0, dim, G, ldg);
        }
    }
}

// See GramFn (kernels.hpp). Each entry is one fmadd chain over the rows in order, so a call
// split into consecutive row blocks gives the same bits as one call.
template <class X>
void gram_upper(const typename X::T* x, std::size_t ld, std::size_t rows, std::size_t dim,
                typename X::T* G, std::size_t ldg, typename X::T* colsum) noexcept {
    constexpr std::size_t W = X::W;
    constexpr std::size_t MR = X::MR;
    for (std::size_t j = 0; j < dim; j += W) { // four chains: one would be add-latency bound
        const std::size_t c = dim - j < W ? dim - j : W;
        typename X::V s0 = X::load_partial(colsum + j, c), s1 = X::zero(), s2 = X::zero(),
                      s3 = X::zero();
        std::size_t k = 0;
        for (; k + 4 <= rows; k += 4) {
            s0 = X::add(s0, X::load_partial(x + k * ld + j, c));
            s1 = X::add(s1, X::load_partial(x + (k + 1) * ld + j, c));
            s2 = X::add(s2, X::load_partial(x + (k + 2) * ld + j, c));
            s3 = X::add(s3, X::load_partial(x + (k + 3) * ld + j, c));
        }
        for (; k < rows; ++k)
            s0 = X::add(s0, X::load_partial(x + k * ld + j, c));
        X::store_partial(colsum + j, X::add(X::add(s0, s1), X::add(s2, s3)), c);
    }
    for (std::size_t a0 = 0; a0 < dim; a0 += MR) {
        const std::size_t ra = dim - a0 < MR ? dim - a0 : MR;
        if (ra == MR) {
            gram_row_block<X, MR>(x, ld, rows, a0, dim, G, ldg);
        } else {
            gram_rows_rest<X, MR - 1>(ra, x, ld, rows, a0, dim, G, ldg);
        }
    }
}

template <class X> void fill_mixed(MixedKernels& k, Isa isa) noexcept {
    k.dot = {&widen_dot<X>, isa};
    k.axpy = {&widen_axpy<X>, isa};
}

template <class X> void fill_kernels(Kernels<typename X::T>& k, Isa isa) noexcept {
    k.dot = {&pair_dot<X>, isa};
    k.l2sq = {&pair_l2sq<X>, isa};
    k.norm2 = {&pair_norm2<X>, isa};
    k.dot_many = {&many_dot<X>, isa};
    k.l2sq_many = {&many_l2sq<X>, isa};
    k.l2sq_panel = {&panel_l2sq<X>, isa};
    k.dot_norm_many = {&many_dot_norm<X>, isa};
    k.norms = {&many_norms<X>, isa};
    k.pack = {&pack_panels<X>, isa};
    k.tile = {&tile<X>, isa};
    k.scan_lt = {&scan_lt<X>, isa};
    k.gram = {&gram_upper<X>, isa};
    k.tile_nr = 2 * X::W;
    k.tile_mr = X::MR;
}
