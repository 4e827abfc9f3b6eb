/* roofline.h - the memory-bandwidth roofline of decode: one decoded token reads every weight
 * once, so the time to stream the weights once bounds the decode speed. Used by both
 * benchmarks (`gpt2 bench`, `npm run bench` through wasm/bench_api.c). */
#ifndef GPT2_ROOFLINE_H
#define GPT2_ROOFLINE_H

#include <stdint.h>

#include "weights.h"

/* Reads every byte of w's pieces once (k_read_bytes), split in 64-byte-aligned slices over
 * w's thread pool (the calling thread alone without one); returns the XOR checksum of the
 * bytes, so that the reads cannot be optimised away. 0 for NULL. */
uint32_t gpt2_weights_stream(const gpt2_weights *w);

#endif
