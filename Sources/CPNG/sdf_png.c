#include "sdf_png.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t length;
    size_t offset;
} mem_reader;

typedef struct {
    char *err;
    size_t err_len;
} err_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    err_ctx *ctx = (err_ctx *)png_get_error_ptr(png);
    if (ctx && ctx->err && ctx->err_len) snprintf(ctx->err, ctx->err_len, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void read_mem(png_structp png, png_bytep out, png_size_t count) {
    mem_reader *r = (mem_reader *)png_get_io_ptr(png);
    if (r->offset + count > r->length) {
        png_error(png, "file is truncated");
        return;
    }
    memcpy(out, r->data + r->offset, count);
    r->offset += count;
}

static void set_err(char *err, size_t err_len, const char *msg) {
    if (err && err_len) snprintf(err, err_len, "%s", msg);
}

int sdf_png_read(const uint8_t *data, size_t length, uint64_t max_pixels,
                 sdf_png_image *out, char *err, size_t err_len) {
    memset(out, 0, sizeof(*out));
    if (length < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_err(err, err_len, "not a PNG file (bad signature)");
        return 1;
    }
    err_ctx ectx = {err, err_len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, on_error, on_warning);
    if (!png) { set_err(err, err_len, "out of memory"); return 1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); set_err(err, err_len, "out of memory"); return 1; }
    mem_reader reader = {data, length, 0};
    volatile png_bytep pixels = NULL;
    volatile png_bytepp rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free((void *)pixels);
        free((void *)rows);
        png_destroy_read_struct(&png, &info, NULL);
        sdf_png_free(out);
        return 1;
    }
    png_set_read_fn(png, &reader, read_mem);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    if ((uint64_t)w * (uint64_t)h > max_pixels) {
        snprintf(err, err_len, "image is %ux%u, more than the %llu pixels allowed", w, h,
                 (unsigned long long)max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (depth == 16) png_set_swap(png);
#endif
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    int out_depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    pixels = (png_bytep)malloc(rowbytes * (size_t)h);
    rows = (png_bytepp)malloc(sizeof(png_bytep) * (size_t)h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + rowbytes * y;
    png_read_image(png, (png_bytepp)rows);
    png_read_end(png, info);

    png_textp texts = NULL;
    int n_text = 0;
    png_get_text(png, info, &texts, &n_text);
    if (n_text > 0) {
        out->text_keys = (char **)calloc((size_t)n_text, sizeof(char *));
        out->text_values = (char **)calloc((size_t)n_text, sizeof(char *));
        if (!out->text_keys || !out->text_values) png_error(png, "out of memory");
        out->n_text = (size_t)n_text;
        for (int i = 0; i < n_text; i++) {
            out->text_keys[i] = strdup(texts[i].key ? texts[i].key : "");
            size_t n = texts[i].text_length ? texts[i].text_length : texts[i].itxt_length;
            char *v = (char *)malloc(n + 1);
            if (v) {
                if (n && texts[i].text) memcpy(v, texts[i].text, n);
                v[n] = 0;
            }
            out->text_values[i] = v;
        }
    }
    free((void *)rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->width = w;
    out->height = h;
    out->channels = channels;
    out->bit_depth = out_depth;
    out->pixels = (uint8_t *)pixels;
    return 0;
}

void sdf_png_free(sdf_png_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
    for (size_t i = 0; i < img->n_text; i++) {
        if (img->text_keys) free(img->text_keys[i]);
        if (img->text_values) free(img->text_values[i]);
    }
    free(img->text_keys);
    free(img->text_values);
    img->text_keys = NULL;
    img->text_values = NULL;
    img->n_text = 0;
}

int sdf_png_write(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                  int channels, int bit_depth, const char *const *text_keys,
                  const char *const *text_values, size_t n_text, char *err, size_t err_len) {
    if (channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16)) {
        set_err(err, err_len, "unsupported channel count or bit depth");
        return 1;
    }
    FILE *volatile fp = fopen(path, "wb");
    if (!fp) {
        snprintf(err, err_len, "cannot open '%s' for writing", path);
        return 1;
    }
    err_ctx ectx = {err, err_len};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ectx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        if (png) png_destroy_write_struct(&png, NULL);
        fclose(fp);
        set_err(err, err_len, "out of memory");
        return 1;
    }
    volatile png_bytepp rows = NULL;
    volatile png_textp texts = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free((void *)rows);
        free((void *)texts);
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return 1;
    }
    png_init_io(png, fp);
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, width, height, bit_depth, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 4);
    if (n_text > 0) {
        texts = (png_textp)calloc(n_text, sizeof(png_text));
        if (!texts) png_error(png, "out of memory");
        for (size_t i = 0; i < n_text; i++) {
            texts[i].compression = PNG_TEXT_COMPRESSION_NONE;
            texts[i].key = (png_charp)text_keys[i];
            texts[i].text = (png_charp)text_values[i];
            texts[i].text_length = strlen(text_values[i]);
        }
        png_set_text(png, info, (png_textp)texts, (int)n_text);
    }
    png_write_info(png, info);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (bit_depth == 16) png_set_swap(png);
#endif
    size_t rowbytes = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    rows = (png_bytepp)malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + rowbytes * y);
    png_write_image(png, (png_bytepp)rows);
    png_write_end(png, info);
    free((void *)rows);
    free((void *)texts);
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0) {
        set_err(err, err_len, "error closing the file (disk full?)");
        return 1;
    }
    return 0;
}
