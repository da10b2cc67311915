/* Region contents: a deterministic function of (seed, offset), so every byte a
 * workload reads can be checked without keeping a copy. Each 8-byte word is a
 * splitmix64-style mix of the seed and the word index. */
#include "core/internal.h"

static inline uint64_t word_at(uint64_t seed, uint64_t index)
{
    uint64_t x = index + seed * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

/* Filled by vectors as the check below is, and for the same reason: the NBD
 * server generates every READ of never-written contents, so the fill is part
 * of each reply's time (fl_fill_by names a path, for the tests). */
static inline __attribute__((always_inline)) void fill_words(uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
    for (uint64_t i = 0; i < n; i++)
        w[i] = word_at(seed, first + i);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((optimize("O3"), target("avx2"))) static void fill_avx2(uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
    fill_words(w, n, seed, first);
}
#endif

__attribute__((optimize("O3"))) static void fill_plain(uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
    fill_words(w, n, seed, first);
}

int fl_fill_by(void *buf, uint64_t len, uint64_t seed, uint64_t offset, enum fl_vec_path path)
{
#if defined(__x86_64__) || defined(__i386__)
    if (path != FL_VEC_PLAIN && __builtin_cpu_supports("avx2")) {
        fill_avx2(buf, len / 8, seed, offset / 8);
        return 0;
    }
#endif
    if (path == FL_VEC_AVX2)
        return -1;
    fill_plain(buf, len / 8, seed, offset / 8);
    return 0;
}

void fl_fill(void *buf, uint64_t len, uint64_t seed, uint64_t offset)
{
    fl_fill_by(buf, len, seed, offset, FL_VEC_AUTO);
}

/* Whether any word differs: no branch in the loop, so it vectorizes; an AVX2
 * copy where the CPU has it (chosen at run time, not by an ifunc, which
 * ThreadSanitizer cannot start under). The application verifies every chunk
 * it reads on its own CPU, where at cpus=same the handler and the prefetcher
 * run too: the check should take as little of that CPU as it can. */
static inline __attribute__((always_inline)) uint64_t diff_bits(const uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
    uint64_t d = 0;
    for (uint64_t i = 0; i < n; i++)
        d |= w[i] ^ word_at(seed, first + i);
    return d;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((optimize("O3"), target("avx2"))) static uint64_t any_diff_avx2(const uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
    return diff_bits(w, n, seed, first);
}
#endif

__attribute__((optimize("O3"))) static uint64_t any_diff_plain(const uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
    return diff_bits(w, n, seed, first);
}

static uint64_t any_diff(const uint64_t *w, uint64_t n, uint64_t seed, uint64_t first)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx2"))
        return any_diff_avx2(w, n, seed, first);
#endif
    return any_diff_plain(w, n, seed, first);
}

int fl_verify_any_diff(const void *buf, uint64_t len, uint64_t seed, uint64_t offset, enum fl_vec_path path)
{
    const uint64_t *w = buf, n = len / 8, first = offset / 8;
    if (path == FL_VEC_PLAIN)
        return any_diff_plain(w, n, seed, first) != 0;
#if defined(__x86_64__) || defined(__i386__)
    if (path == FL_VEC_AVX2)
        return __builtin_cpu_supports("avx2") ? any_diff_avx2(w, n, seed, first) != 0 : -1;
#else
    if (path == FL_VEC_AVX2)
        return -1;
#endif
    return any_diff(w, n, seed, first) != 0;
}

uint64_t fl_verify(const void *buf, uint64_t len, uint64_t seed, uint64_t offset, uint64_t *first_bad)
{
    const uint64_t *w = buf;
    uint64_t first = offset / 8, bad = 0;
    *first_bad = UINT64_MAX;
    if (!any_diff(w, len / 8, seed, first))
        return 0;
    for (uint64_t i = 0; i < len / 8; i++) {
        if (w[i] != word_at(seed, first + i)) {
            if (!bad)
                *first_bad = offset + i * 8;
            bad++;
        }
    }
    return bad;
}
