// CPU feature detection and the immutable per-level kernel tables.
//
// A level is usable only when the CPU has the instructions *and* the OS saves the wider
// register state: cpuid feature bits plus xgetbv(XCR0). AVX2 requires AVX2 + FMA + F16C with
// YMM state enabled; AVX-512 requires F/DQ/BW/VL with opmask and ZMM state enabled;
// avx512_vnni adds AVX512_VNNI (leaf 7 ecx bit 11) and avx512_vnni_bf16 adds AVX512_BF16
// (leaf 7 sub-leaf 1 eax bit 5) on top. NEON is baseline on aarch64.
//
// Each table starts as a copy of the scalar one and the level's fill_* overwrites what it
// implements, so no slot is ever null. Levels are cumulative: avx512_vnni_bf16 = avx512_vnni +
// its bf16 kernel, avx512_vnni = avx512 + integer kernels, avx512 = avx2 + wider kernels. The
// compressed-code tables (quant_kernels.hpp) are built the same way, one per level. The active
// table is one atomic pointer: PYSIM_SIMD (read once, at first use) may lower the level; tests
// switch it with set_active().
#include "simd/dispatch.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#define PYSIM_X86 1
#if defined(_MSC_VER)
#include <immintrin.h>
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace pysim::simd {
namespace {

struct CpuFeatures {
    bool avx2 = false;
    bool avx512 = false;
    bool avx512_vnni = false;
    bool avx512_vnni_bf16 = false;
    bool neon = false;
};

#if PYSIM_X86
void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) noexcept {
#if defined(_MSC_VER)
    int regs[4];
    __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(sub));
    for (int i = 0; i < 4; ++i)
        r[i] = static_cast<unsigned>(regs[i]);
#else
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

std::uint64_t read_xcr0() noexcept {
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    std::uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<std::uint64_t>(edx) << 32) | eax;
#endif
}

CpuFeatures detect() noexcept {
    CpuFeatures f;
    unsigned r[4];
    cpuid(0, 0, r);
    const unsigned max_leaf = r[0];
    cpuid(1, 0, r);
    const bool fma = r[2] & (1u << 12);
    const bool osxsave = r[2] & (1u << 27);
    const bool avx = r[2] & (1u << 28);
    const bool f16c = r[2] & (1u << 29);
    if (max_leaf < 7 || !osxsave || !avx)
        return f; // a CPU flag alone is not enough
    const std::uint64_t xcr0 = read_xcr0();
    cpuid(7, 0, r);
    const unsigned need512 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31); // F DQ BW VL
    f.avx2 = fma && f16c && (r[1] & (1u << 5)) && (xcr0 & 0x06) == 0x06;
    f.avx512 = f.avx2 && (r[1] & need512) == need512 && (xcr0 & 0xE6) == 0xE6;
    f.avx512_vnni = f.avx512 && (r[2] & (1u << 11));
    const unsigned max_sub7 = r[0];
    if (f.avx512_vnni && max_sub7 >= 1) {
        cpuid(7, 1, r);
        f.avx512_vnni_bf16 = r[0] & (1u << 5);
    }
    return f;
}
#else
CpuFeatures detect() noexcept {
    CpuFeatures f;
#if defined(__aarch64__) || defined(_M_ARM64)
    f.neon = true;
#endif
    return f;
}
#endif

bool compiled(Isa isa) noexcept {
    switch (isa) {
    case Isa::scalar:
        return true;
#if defined(PYSIM_HAVE_AVX2)
    case Isa::avx2:
        return true;
#endif
#if defined(PYSIM_HAVE_AVX512)
    case Isa::avx512:
        return true;
#endif
#if defined(PYSIM_HAVE_AVX512_VNNI)
    case Isa::avx512_vnni:
        return true;
#endif
#if defined(PYSIM_HAVE_AVX512_BF16)
    case Isa::avx512_vnni_bf16:
        return true;
#endif
#if defined(PYSIM_HAVE_NEON)
    case Isa::neon:
        return true;
#endif
    default:
        return false;
    }
}

bool cpu_has(Isa isa, const CpuFeatures& cpu) noexcept {
    switch (isa) {
    case Isa::scalar:
        return true;
    case Isa::avx2:
        return cpu.avx2;
    case Isa::avx512:
        return cpu.avx512;
    case Isa::neon:
        return cpu.neon;
    case Isa::avx512_vnni:
        return cpu.avx512_vnni;
    case Isa::avx512_vnni_bf16:
        return cpu.avx512_vnni_bf16;
    }
    return false;
}

// Position of a level in its architecture's chain (0 = scalar).
[[maybe_unused]] int rank(Isa isa) noexcept {
    switch (isa) {
    case Isa::scalar:
        return 0;
    case Isa::avx2:
        return 1;
    case Isa::avx512:
        return 2;
    case Isa::avx512_vnni:
        return 3;
    case Isa::avx512_vnni_bf16:
        return 4;
    case Isa::neon:
        return 1;
    }
    return 0;
}
[[maybe_unused]] bool x86_level(Isa isa) noexcept {
    return isa != Isa::neon && isa != Isa::scalar;
}

KernelTable build(Isa isa) noexcept {
    KernelTable t;
    fill_scalar(t);
#if defined(PYSIM_HAVE_AVX2)
    if (x86_level(isa) && rank(isa) >= 1)
        fill_avx2(t);
#endif
#if defined(PYSIM_HAVE_AVX512)
    if (x86_level(isa) && rank(isa) >= 2)
        fill_avx512(t);
#endif
#if defined(PYSIM_HAVE_NEON)
    if (isa == Isa::neon)
        fill_neon(t);
#endif
    t.isa = isa;
    return t;
}

// The same cumulative chain as build(), over the other table (duplicates pairs them by shape):
// it has two more levels (the VNNI / BF16 integer kernels) and other fill functions, and a
// generic chain would need a null entry per level not compiled in, no shorter than this.
QuantKernels build_quant(Isa isa) noexcept {
    QuantKernels t;
    fill_quant_scalar(t);
#if defined(PYSIM_HAVE_AVX2)
    if (x86_level(isa) && rank(isa) >= 1)
        fill_quant_avx2(t);
#endif
#if defined(PYSIM_HAVE_AVX512)
    if (x86_level(isa) && rank(isa) >= 2)
        fill_quant_avx512(t);
#endif
#if defined(PYSIM_HAVE_AVX512_VNNI)
    if (x86_level(isa) && rank(isa) >= 3)
        fill_quant_avx512_vnni(t);
#endif
#if defined(PYSIM_HAVE_AVX512_BF16)
    if (x86_level(isa) && rank(isa) >= 4)
        fill_quant_avx512_vnni_bf16(t);
#endif
#if defined(PYSIM_HAVE_NEON)
    if (isa == Isa::neon)
        fill_quant_neon(t);
#endif
    t.isa = isa;
    return t;
}

// Levels from best to worst, for "best available".
constexpr Isa kPreference[] = {
    Isa::avx512_vnni_bf16, Isa::avx512_vnni, Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar};

struct Registry {
    CpuFeatures cpu = detect();
    // A level's table is filled only when this CPU runs that level: fill_avx512() and its
    // kin are compiled with their level's -m flags, and the compiler may use that level's
    // instructions to fill the table itself (GCC -O1 stores it with zmm registers), so
    // calling them on an older CPU faults. Levels the CPU lacks keep the scalar table and
    // are never selected (table_for refuses them).
    KernelTable tables[kIsaCount];
    QuantKernels quant[kIsaCount];
    Isa best = Isa::scalar;
    std::string request;
    std::string note;
    std::atomic<const KernelTable*> current{nullptr};

    Registry() {
        for (int i = 0; i < kIsaCount; ++i) {
            const Isa isa = static_cast<Isa>(i);
            const bool runs = compiled(isa) && cpu_has(isa, cpu);
            tables[i] = build(runs ? isa : Isa::scalar);
            quant[i] = build_quant(runs ? isa : Isa::scalar);
        }
        for (Isa isa : kPreference) {
            if (compiled(isa) && cpu_has(isa, cpu)) {
                best = isa;
                break;
            }
        }
        Isa chosen = best;
        if (const char* env = std::getenv("PYSIM_SIMD")) {
            request = env;
            Isa wanted;
            if (!parse_isa(request, wanted)) {
                note = "PYSIM_SIMD=" + request + " is not a known level; using " + isa_name(best);
            } else if (!(compiled(wanted) && cpu_has(wanted, cpu))) {
                note = "PYSIM_SIMD=" + request + " cannot run on this CPU or build; using " +
                       isa_name(best);
            } else {
                chosen = wanted;
            }
        }
        current.store(&tables[static_cast<int>(chosen)], std::memory_order_release);
    }
};

Registry& registry() noexcept {
    static Registry r; // thread-safe one-time init; first touched when _core is imported
    return r;
}

} // namespace

const KernelTable& active() noexcept {
    return *registry().current.load(std::memory_order_acquire);
}

const QuantKernels& quant_for(const KernelTable& table) noexcept {
    return registry().quant[static_cast<int>(table.isa)];
}

const KernelTable* table_for(Isa isa) noexcept {
    Registry& r = registry();
    if (!(compiled(isa) && cpu_has(isa, r.cpu)))
        return nullptr;
    return &r.tables[static_cast<int>(isa)];
}

bool set_active(Isa isa) noexcept {
    const KernelTable* t = table_for(isa);
    if (!t)
        return false;
    registry().current.store(t, std::memory_order_release);
    return true;
}

const char* isa_name(Isa isa) noexcept {
    switch (isa) {
    case Isa::scalar:
        return "scalar";
    case Isa::avx2:
        return "avx2";
    case Isa::avx512:
        return "avx512";
    case Isa::neon:
        return "neon";
    case Isa::avx512_vnni:
        return "avx512_vnni";
    case Isa::avx512_vnni_bf16:
        return "avx512_vnni_bf16";
    }
    return "unknown";
}

bool parse_isa(const std::string& name, Isa& out) noexcept {
    for (int i = 0; i < kIsaCount; ++i) {
        const Isa isa = static_cast<Isa>(i);
        if (name == isa_name(isa)) {
            out = isa;
            return true;
        }
    }
    return false;
}

std::vector<Isa> compiled_isas() {
    std::vector<Isa> out;
    for (int i = 0; i < kIsaCount; ++i)
        if (compiled(static_cast<Isa>(i)))
            out.push_back(static_cast<Isa>(i));
    return out;
}

std::vector<Isa> runnable_isas() {
    std::vector<Isa> out;
    for (Isa isa : compiled_isas())
        if (cpu_has(isa, registry().cpu))
            out.push_back(isa);
    return out;
}

Isa detected_isa() noexcept {
    return registry().best;
}
std::string env_request() {
    return registry().request;
}
std::string override_note() {
    return registry().note;
}

} // namespace pysim::simd
