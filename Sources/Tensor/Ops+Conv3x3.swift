import Foundation
import CKernels

extension Ops {
    /// The shifted-GEMM 3x3 convolution is used for stride-1, padding-1 3x3 convs unless
    /// `SDFLOW_CONV_IM2COL=1` (kept for A/B measurements).
    static let shiftedConv3x3 = ProcessInfo.processInfo.environment["SDFLOW_CONV_IM2COL"] != "1"

    /// A 3x3, stride 1, padding 1 convolution without im2col: the input is copied once into a zero-padded
    /// plane per channel with rows of W + 1 (one zero column per row, which is the left border of its
    /// row and the right border of the row above), so every tap (dy, dx) of the kernel is the same plane
    /// read at a flat offset dy * (W + 1) + dx. Each band of output rows is then 9 sgemms ([O, C] tap
    /// weights x [C, rows * (W + 1)] shifted input, accumulating), computed on a grid with one spare column
    /// per row that is dropped when the band is written out (NCHW, + bias). Bands run on all cores.
    /// `input`: applied while the padded planes are filled (per (image, channel) scale and shift, then
    /// SiLU; nearest 2x upsampling), so the transformed input is never written as a tensor; h and w are
    /// the sizes after upsampling, `xp` holds the images before it. Each element gets exactly the
    /// arithmetic of `applyConvInputTransform` (the same bits).
    static func conv3x3Shifted(_ xp: UnsafePointer<Float>, n: Int, c: Int, h: Int, w: Int, weight: Tensor, o: Int,
                               bias: UnsafePointer<Float>?, into yp: UnsafeMutablePointer<Float>,
                               input: ConvInputTransform = .identity) {
        let up = input.upsample2x ? 2 : 1
        let sh = h / up, sw = w / up   // source image size
        let affine = input.affine, silu: Int32 = input.silu ? 1 : 0
        let wp2 = w + 1   // row stride of the padded plane and of the output grid
        let plane = (h + 2) * wp2 + 2
        let tapCount = o * c
        ScratchPool.shared.withFloats(9 * tapCount) { taps in
            // [O, C, 3, 3] -> [9][O][C] in one pass: each output channel's 9C weights are widened into a
            // small per-core scratch (it stays in L2), then scattered to the nine tap matrices.
            let src = weight.rawPointer, dt = weight.dtype, es = dt.size
            Parallel.chunks(o, minChunk: 8) { r in
                ScratchPool.shared.withFloats(9 * c) { row in
                    for oi in r {
                        Convert.toF32(src.advanced(by: oi * 9 * c * es), dtype: dt, into: row, count: 9 * c)
                        for t in 0..<9 {
                            let d = taps + t * tapCount + oi * c
                            for ci in 0..<c { d[ci] = row[ci * 9 + t] }
                        }
                    }
                }
            }
            ScratchPool.shared.withFloats(c * plane) { pad in
                // Bands: one per core, or more (a multiple of the core count) when a band's output would
                // exceed 16 MB, or 2 MB for inputs of at most 256 channels: each of the 9 accumulating GEMMs
                // reads and writes the band's output once, which costs relatively more the fewer
                // channels it sums over. Measured in a C harness (OpenBLAS, 2 threads, interleaved), one
                // band per core against ~2 MB bands: 0.86-0.96x the time at 320-1280 channels (the UNet's
                // 3x3 convs), but 1.05-1.1x at 128 channels @ 512-1024 (the VAE's last level).
                let cores = Parallel.cores
                let capRows = max(1, (c <= 256 ? 1 << 19 : 1 << 22) / max(1, o * wp2))
                var bandTarget = max(cores, (h + capRows - 1) / capRows)
                bandTarget = (bandTarget + cores - 1) / cores * cores
                let rowsPerBand = (h + bandTarget - 1) / bandTarget
                let bands = (h + rowsPerBand - 1) / rowsPerBand
                for img in 0..<n {
                    let x0 = xp + img * c * sh * sw
                    Parallel.chunks(c, minChunk: max(1, 4096 / max(1, h * w))) { r in
                        for ci in r {
                            let p = pad + ci * plane
                            p.update(repeating: 0, count: wp2)
                            for y in 0..<h {
                                let row = p + (y + 1) * wp2
                                row[0] = 0
                                let src = x0 + (ci * sh + y / up) * sw
                                if up == 2 {
                                    for i in 0..<sw { row[1 + 2 * i] = src[i]; row[2 + 2 * i] = src[i] }
                                }
                                if let a = affine {
                                    sdf_scale_shift(up == 2 ? UnsafePointer(row + 1) : src, row + 1, w, a.scale[img * c + ci], a.shift[img * c + ci], silu)
                                } else if up == 1 {
                                    (row + 1).update(from: src, count: w)
                                }
                            }
                            (p + (h + 1) * wp2).update(repeating: 0, count: wp2 + 2)
                        }
                    }
                    let y0p = yp + img * o * h * w
                    let serial = bands >= cores
                    let body: (Int) -> Void = { bi in
                        let y0 = bi * rowsPerBand, rows = min(rowsPerBand, h - y0)
                        let nn = rows * wp2
                        ScratchPool.shared.withFloats(o * nn) { band in
                            for t in 0..<9 {
                                let dy = t / 3, dx = t % 3
                                BLAS.sgemm(m: o, n: nn, k: c, a: taps + t * tapCount, lda: c,
                                           b: pad + (y0 + dy) * wp2 + dx, ldb: plane, beta: t == 0 ? 0 : 1, c: band, ldc: nn,
                                           serial: serial)
                            }
                            for oi in 0..<o {
                                let bv = bias?[oi] ?? 0
                                for r in 0..<rows {
                                    let s = band + oi * nn + r * wp2
                                    let d = y0p + (oi * h + y0 + r) * w
                                    for x in 0..<w { d[x] = s[x] + bv }
                                }
                            }
                        }
                    }
                    if serial {
                        BLAS.withSingleThreadedBLAS { Parallel.forEach(bands, body) }
                    } else {
                        for bi in 0..<bands { body(bi) }
                    }
                }
            }
        }
    }
}
