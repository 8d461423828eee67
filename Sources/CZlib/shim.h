// The system zlib (Debian's zlib1g-dev): SagaStore writes and reads the gzip members of the saga archive with it.
#include <zlib.h>

// deflateInit2 and inflateInit2 are macros that pass the library's version and the stream's size, which Swift cannot
// import; these wrap them.
static inline int waybill_deflate_init_gzip(z_stream *stream, int level) {
    // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

static inline int waybill_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}
