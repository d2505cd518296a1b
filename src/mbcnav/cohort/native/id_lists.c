/* Mask words -> an Arrow list column of Enum codes: per row, the positions of its set bits, in
   order (bit b of word w is item w * word_bits + b). Building the lists in Polars from the masks
   cost more than evaluating the whole plan.

   A mask is read a byte at a time through a table of each byte value's bit positions: eight
   codes are stored at once and the count of set bits says how many of them stay, so there is
   no branch per item (their number varies from row to row and mispredicted). */

#include <stdint.h>
#include <string.h>

/* Returns the number of items written, or -1 when they would pass `capacity` (which must leave
   8 bytes to spare: whole groups of eight are stored; at most 2^31 items: 32-bit offsets). */
int64_t mbcnav_id_lists(int64_t n, const uint64_t *const *words, int64_t n_words, int64_t word_bits,
                        int32_t *offsets, uint8_t *codes, int64_t capacity) {
    uint64_t positions[256];
    uint8_t counts[256];
    for (int v = 0; v < 256; v++) {
        uint8_t found[8] = {0};
        int c = 0;
        for (int b = 0; b < 8; b++)
            if ((v >> b) & 1) found[c++] = (uint8_t)b;
        memcpy(&positions[v], found, 8);
        counts[v] = (uint8_t)c;
    }
    int64_t at = 0;
    offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t w = 0; w < n_words; w++) {
            uint64_t m = words[w][i];
            for (uint64_t base = (uint64_t)(w * word_bits); m; m >>= 8, base += 8) {
                if (at + 8 > capacity) return -1;
                uint64_t eight = positions[m & 255] + base * 0x0101010101010101ull;   /* no carry: codes < 256 */
                memcpy(codes + at, &eight, 8);
                at += counts[m & 255];
            }
        }
        offsets[i + 1] = (int32_t)at;
    }
    return at;
}
