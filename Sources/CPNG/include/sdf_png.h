#ifndef SDF_PNG_H
#define SDF_PNG_H
// A small C layer over libpng: libpng reports errors with longjmp, which Swift cannot catch,
// so every libpng call is made here behind setjmp and errors come back as a message.
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t width;
    uint32_t height;
    int channels;      // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (palette expanded, tRNS -> alpha)
    int bit_depth;     // 8 or 16 (sub-byte gray is expanded to 8)
    uint8_t *pixels;   // row-major, channels*bit_depth/8 bytes a pixel; 16-bit samples in host order
    size_t n_text;
    char **text_keys;
    char **text_values;
} sdf_png_image;

/// Reads a PNG held in memory. Returns 0 on success; on failure writes a message into err.
/// max_pixels bounds width*height (refuses absurd headers before allocating).
int sdf_png_read(const uint8_t *data, size_t length, uint64_t max_pixels,
                 sdf_png_image *out, char *err, size_t err_len);
void sdf_png_free(sdf_png_image *img);

/// Writes 8-bit pixels (channels 1..4) to path with tEXt chunks. Returns 0 on success.
int sdf_png_write(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                  int channels, int bit_depth, const char *const *text_keys,
                  const char *const *text_values, size_t n_text, char *err, size_t err_len);
#endif
