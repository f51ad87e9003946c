// gguf_write.h: a streaming writer for GGUF v3 files.
//
// Use: open, set metadata and add tensor infos (any order between the two), then write each tensor's
// bytes in the order the tensors were added, in as many pieces as convenient, then finish:
//
//   gguf_writer *w; gguf_writer_open("m.gguf", &w);
//   gguf_writer_set_str(w, "general.architecture", "llama");
//   gguf_writer_add_tensor(w, "output_norm.weight", 1, (int64_t[]){2048}, INF_TYPE_F32);
//   gguf_writer_write(w, norm, 2048 * 4);          // the first data write emits the header
//   gguf_writer_finish(w);                          // pads, closes, renames; frees w
//
// Only the header (metadata and tensor infos) is held in memory; tensor data goes straight to the file,
// so a model is never in memory twice. The file is written to "<path>.tmp" and renamed onto path by
// gguf_writer_finish, so a failure (or gguf_writer_free before finishing) leaves no half-written file at
// path: the temporary file is removed. Every error message names the path.
//
// Layout written: magic "GGUF", version 3, u64 tensor and kv counts, the kvs in the order set, the tensor
// infos in the order added (offsets relative to the data section, each a multiple of the alignment), zero
// padding to the alignment, then each tensor's bytes followed by zero padding to the alignment (the last
// tensor too, as ggml does). The alignment is 32 unless the metadata sets general.alignment (a u32 power
// of two).
//
// Setting a key that is already present removes the old entry and appends the new one (ggml's gguf_set_*
// behaviour, which llama-quantize relies on to move general.file_type to the end).
//
// Left out: reading back (see gguf.h), seeking to rewrite the header, versions 1 and 2, nested arrays
// (arrays of arrays), big-endian files, and fsync (rename gives atomicity against failures of this process,
// not against power loss).
#ifndef INFERNO_GGUF_WRITE_H
#define INFERNO_GGUF_WRITE_H

#include "gguf/gguf.h"

// Tensor names as ggml can hold them (GGML_MAX_NAME = 64 bytes with the NUL).
#define GGUF_WRITER_MAX_NAME_LEN 63u
// Cap on the serialized metadata (keys and values together); a 256k-token vocabulary with merges is
// under 20 MiB.
#define GGUF_WRITER_MAX_META_BYTES ((size_t)256 << 20)

typedef struct gguf_writer gguf_writer;

// Creates "<path>.tmp" (truncating any leftover). INF_ERR_IO names the temporary path and the reason.
inf_status gguf_writer_open(const char *path, gguf_writer **out);
// Abandons an unfinished file: closes and removes the temporary file; path is never touched. NULL is a no-op.
void gguf_writer_free(gguf_writer *w);

// ---- metadata (before the first data write) ----
// Keys: 1..GGUF_MAX_KEY_LEN bytes. Strings: at most GGUF_MAX_STRING_LEN bytes.
inf_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v);
inf_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v);
inf_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v);
inf_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v);
inf_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
inf_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
inf_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
inf_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
inf_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
inf_status gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
inf_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
inf_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
// A string of len bytes (may contain NUL bytes).
inf_status gguf_writer_set_strn(gguf_writer *w, const char *key, const char *v, size_t len);
// Array of n fixed-size elements of elem_type (not STRING or ARRAY), read from data in the file's
// little-endian layout (bools as bytes 0/1).
inf_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                               uint64_t n);
// Array of n strings given as views (ptr, len).
inf_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n);
// Copies an entry read by gguf.h (any type, string arrays included); INF_ERR_UNSUPPORTED for nested arrays.
inf_status gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
// Removes key if present; returns whether it was.
bool gguf_writer_remove_kv(gguf_writer *w, const char *key);
int64_t gguf_writer_n_kv(const gguf_writer *w);

// ---- tensor infos (before the first data write) ----
// ne in ggml order (ne[0] = row length), n_dims 1..GGUF_MAX_DIMS, every ne >= 1; ne[0] a multiple of the
// type's block size; names unique, 1..GGUF_WRITER_MAX_NAME_LEN bytes. The type must be one this build
// knows the size of (quant.h traits).
inf_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                                  inf_type type);
int64_t gguf_writer_n_tensors(const gguf_writer *w);
uint64_t gguf_writer_tensor_bytes(const gguf_writer *w, int64_t i); // bytes of tensor i (no padding)

// ---- data ----
// Appends n bytes to the tensors' data, in the order the tensors were added; a piece may span the end of
// one tensor and the start of the next. The first call writes the header. Writing more bytes than the
// tensors hold is INF_ERR_INVALID_ARG. After any failure the writer only reports that failure again.
inf_status gguf_writer_write(gguf_writer *w, const void *data, size_t n);
// Checks that every tensor got all its bytes, writes the header if no data was written (files without
// tensors), flushes, closes and renames the temporary file onto path. Frees w in every case; on failure
// the temporary file is removed.
inf_status gguf_writer_finish(gguf_writer *w);

#endif // INFERNO_GGUF_WRITE_H
