/* What facts.c and the generated program share: the input column as Python hands it over, and
   the 64x64 bit transpose that turns per-row words into per-column words and back. */

#include <stdint.h>
#include <string.h>

typedef struct {
    const void *values;
    const uint8_t *valid;   /* Arrow validity bitmap; NULL: every value is there */
    int64_t offset;         /* the first row's position in values and valid */
    const int16_t *table;   /* Enums read in place from Parquet: values are int32 dictionary indices,
                               table[index] the value's code (-1: not allowed); NULL: values are codes */
    int64_t missing;        /* the code a missing Enum value reads as (its default), -1 for none */
} column;

/* a[c] bit r <- a[r] bit c (Hacker's Delight, transpose32 widened to 64). */
static void transpose64(uint64_t a[64]) {
    uint64_t m = 0x00000000FFFFFFFFull, t;
    for (int j = 32; j; j >>= 1, m ^= m << j)
        for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
            t = ((a[k] >> j) ^ a[k | j]) & m;
            a[k] ^= t << j;
            a[k | j] ^= t;
        }
}
