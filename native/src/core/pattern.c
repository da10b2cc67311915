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

void fl_fill(void *buf, uint64_t len, uint64_t seed, uint64_t offset)
{
    uint64_t *w = buf;
    uint64_t first = offset / 8;
    for (uint64_t i = 0; i < len / 8; i++)
        w[i] = word_at(seed, first + i);
}

uint64_t fl_verify(const void *buf, uint64_t len, uint64_t seed, uint64_t offset, uint64_t *first_bad)
{
    const uint64_t *w = buf;
    uint64_t first = offset / 8, bad = 0;
    *first_bad = UINT64_MAX;
    for (uint64_t i = 0; i < len / 8; i++) {
        if (w[i] != word_at(seed, first + i)) {
            if (!bad)
                *first_bad = offset + i * 8;
            bad++;
        }
    }
    return bad;
}
