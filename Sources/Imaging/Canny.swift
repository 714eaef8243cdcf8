import Dispatch

// Canny edge detection that reproduces OpenCV's `cv2.Canny(gray, low*255, high*255)` (apertureSize 3,
// L2gradient false) bit for bit, which is how the ControlNet canny annotator (controlnet_aux
// `CannyDetector`) produces its control images.
//
// The facts it depends on (OpenCV imgproc canny.cpp / color_rgb, checked against opencv-python 5.0.0):
//  * Gray: `cvtColor(RGB2GRAY)` on uint8 is fixed point with 15 fractional bits:
//    (9798 R + 19235 G + 3735 B + 2^14) >> 15 (verified over all 2^24 RGB triples).
//  * Gradients: 3x3 Sobel into int16 with BORDER_REPLICATE at the image edges:
//    dx = [-1 0 1; -2 0 2; -1 0 1], dy = its transpose; magnitude = |dx| + |dy| (L1, an integer).
//  * Thresholds: swapped if low > high, then floored to integers; a pixel is a candidate when
//    mag > low and a seed when mag > high (both strict).
//  * Non-maximum suppression in fixed point with tan(22.5°) = round(0.41421356 * 2^15) = 13573:
//    with x = |dx|, y = |dy| << 15: y < 13573 x is "horizontal" gradient (compare left/right),
//    y > 13573 x + 2x<<15 is "vertical" (compare up/down), otherwise diagonal (up-left/down-right
//    when dx and dy have the same sign, else up-right/down-left). The neighbour before the pixel
//    must be strictly smaller and the one after smaller or equal (left >, right >=; up >, down >=);
//    both diagonal comparisons are strict. Magnitudes outside the image count as 0.
//  * Hysteresis: 8-connected flood from the seeds through candidates. (OpenCV marks some seeds as
//    plain candidates when a left/upper neighbour is already a seed; that changes nothing because the
//    neighbour's flood reaches them.)

/// Canny edges of every image in `image`, like ComfyUI's Canny node but with OpenCV's algorithm (see
/// above). Thresholds are on the 0...1 scale and are multiplied by 255, as the node's inputs are.
///
/// The image is converted to uint8 with `u8 = clamp(round(x * 255), 0, 255)` (rounding, so that an image
/// that came from an 8-bit file converts back to exactly its bytes), then to gray with OpenCV's
/// RGB2GRAY. 1-channel input is taken as gray; 4-channel input ignores alpha.
///
/// - Returns: a 3-channel batch of the same size, 1.0 on edges and 0.0 elsewhere.
public func canny(_ image: ImageBatch, low: Float, high: Float) throws -> ImageBatch {
    guard low.isFinite, high.isFinite else {
        throw ImagingError("Canny: thresholds must be finite numbers, got low \(low), high \(high)")
    }
    guard image.channels == 1 || image.channels == 3 || image.channels == 4 else {
        throw ImagingError("Canny: expected an image with 1, 3 or 4 channels, got \(image.channels)")
    }
    guard image.batch >= 0, image.height >= 0, image.width >= 0,
          image.pixels.count == image.batch * image.height * image.width * image.channels else {
        throw ImagingError("Canny: image shape [\(image.batch), \(image.height), \(image.width), \(image.channels)] does not match its \(image.pixels.count) values")
    }
    let plane = image.height * image.width
    var out = ImageBatch(batch: image.batch, height: image.height, width: image.width, channels: 3)
    guard plane > 0 else { return out }
    for b in 0..<image.batch {
        let gray = cannyGray(image, index: b)
        let edges = cannyEdges(gray: gray, width: image.width, height: image.height,
                               lowThreshold: Double(low) * 255, highThreshold: Double(high) * 255)
        out.pixels.withUnsafeMutableBufferPointer { dst in
            let base = b * plane * 3
            for i in 0..<plane where edges[i] != 0 {
                dst[base + 3 * i] = 1
                dst[base + 3 * i + 1] = 1
                dst[base + 3 * i + 2] = 1
            }
        }
    }
    return out
}

/// The uint8 gray plane Canny works on for image `index` of the batch: rounding to uint8, then
/// OpenCV's RGB2GRAY fixed-point weights (see the notes at the top of this file).
public func cannyGray(_ image: ImageBatch, index: Int) -> [UInt8] {
    let plane = image.height * image.width
    let channels = image.channels
    var gray = [UInt8](repeating: 0, count: plane)
    image.pixels.withUnsafeBufferPointer { src in
        gray.withUnsafeMutableBufferPointer { dst in
            let s = src.baseAddress! + index * plane * channels
            let d = dst.baseAddress!
            @inline(__always) func u8(_ v: Float) -> Int32 {
                // NaN compares false everywhere and becomes 0.
                let r = (v * 255).rounded(.toNearestOrAwayFromZero)
                return r >= 255 ? 255 : (r > 0 ? Int32(r) : 0)
            }
            if channels == 1 {
                for i in 0..<plane { d[i] = UInt8(u8(s[i])) }
            } else {
                for i in 0..<plane {
                    let p = s + i * channels
                    let y = (9798 * u8(p[0]) + 19235 * u8(p[1]) + 3735 * u8(p[2]) + (1 << 14)) >> 15
                    d[i] = UInt8(truncatingIfNeeded: y)
                }
            }
        }
    }
    return gray
}

/// OpenCV-exact Canny on a uint8 gray plane (row-major, `width * height` bytes).
/// Thresholds are on OpenCV's scale (0...255 per gradient unit, like `cv2.Canny`'s arguments).
/// - Returns: 255 on edges, 0 elsewhere (as `cv2.Canny` does).
public func cannyEdges(gray: [UInt8], width: Int, height: Int,
                       lowThreshold: Double, highThreshold: Double) -> [UInt8] {
    precondition(gray.count == width * height, "cannyEdges: gray has \(gray.count) bytes for \(width)x\(height)")
    guard width > 0, height > 0 else { return [] }
    var lowT = lowThreshold, highT = highThreshold
    if lowT > highT { swap(&lowT, &highT) }
    // Floor to integers as OpenCV does (clamped so the conversion cannot trap).
    let low = Int32(max(-1, min(Double(Int32.max), lowT.rounded(.down))))
    let high = Int32(max(-1, min(Double(Int32.max), highT.rounded(.down))))

    let w = width, h = height
    let ps = w + 2                       // padded row stride of mag and map
    var dxs = [Int16](repeating: 0, count: w * h)
    var dys = [Int16](repeating: 0, count: w * h)
    var mag = [Int32](repeating: 0, count: ps * (h + 2))       // zero border
    // map: 0 candidate, 1 not an edge, 2 edge. Border stays 1 so the flood never leaves the image.
    var map = [UInt8](repeating: 1, count: ps * (h + 2))

    gray.withUnsafeBufferPointer { g in
    dxs.withUnsafeMutableBufferPointer { dxb in
    dys.withUnsafeMutableBufferPointer { dyb in
    mag.withUnsafeMutableBufferPointer { mb in
    map.withUnsafeMutableBufferPointer { mapb in
        let src = CannyPointer(g.baseAddress!)
        let dxp = CannyPointer(dxb.baseAddress!), dyp = CannyPointer(dyb.baseAddress!)
        let magp = CannyPointer(mb.baseAddress!), mapp = CannyPointer(mapb.baseAddress!)

        // Pass 1: Sobel (BORDER_REPLICATE) and L1 magnitude.
        cannyParallelRows(h) { rows in
            let s = src.p, dx = dxp.p, dy = dyp.p, m = magp.p
            for y in rows {
                let up = s + max(y - 1, 0) * w, mid = s + y * w, dn = s + min(y + 1, h - 1) * w
                let drow = y * w, mrow = (y + 1) * ps + 1
                for x in 0..<w {
                    let xl = x > 0 ? x - 1 : 0, xr = x < w - 1 ? x + 1 : w - 1
                    let a = Int32(up[xl]), b = Int32(up[x]), c = Int32(up[xr])
                    let d = Int32(mid[xl]), f = Int32(mid[xr])
                    let gg = Int32(dn[xl]), hh = Int32(dn[x]), ii = Int32(dn[xr])
                    let gx = (c + 2 * f + ii) - (a + 2 * d + gg)
                    let gy = (gg + 2 * hh + ii) - (a + 2 * b + c)
                    dx[drow + x] = Int16(truncatingIfNeeded: gx)
                    dy[drow + x] = Int16(truncatingIfNeeded: gy)
                    m[mrow + x] = abs(gx) + abs(gy)
                }
            }
        }

        // Pass 2: non-maximum suppression and thresholds.
        let tg22: Int64 = 13573  // Int(0.41421356237 * 2^15 + 0.5)
        cannyParallelRows(h) { rows in
            let dx = dxp.p, dy = dyp.p, mg = magp.p, mp = mapp.p
            for y in rows {
                let c = mg + (y + 1) * ps + 1
                let above = c - ps, below = c + ps
                let out = mp + (y + 1) * ps + 1
                let drow = y * w
                for x in 0..<w {
                    let m = c[x]
                    var mark: UInt8 = 1
                    if m > low {
                        let xs = Int64(dx[drow + x]), ys = Int64(dy[drow + x])
                        let ax = abs(xs), ay = abs(ys) << 15
                        let t22 = ax * tg22
                        let isMax: Bool
                        if ay < t22 {
                            isMax = m > c[x - 1] && m >= c[x + 1]
                        } else if ay > t22 + (ax << 16) {
                            isMax = m > above[x] && m >= below[x]
                        } else if (xs ^ ys) < 0 {
                            isMax = m > above[x + 1] && m > below[x - 1]
                        } else {
                            isMax = m > above[x - 1] && m > below[x + 1]
                        }
                        if isMax { mark = m > high ? 2 : 0 }
                    }
                    out[x] = mark
                }
            }
        }

        // Pass 3: hysteresis, 8-connected flood from the seeds (serial; touches only edge pixels).
        let mp = mapp.p
        var stack = [Int]()
        stack.reserveCapacity(1024)
        for y in 1...h {
            let row = y * ps
            for x in 1...w where mp[row + x] == 2 { stack.append(row + x) }
        }
        let offsets = [-ps - 1, -ps, -ps + 1, -1, 1, ps - 1, ps, ps + 1]
        while let i = stack.popLast() {
            for o in offsets where mp[i + o] == 0 {
                mp[i + o] = 2
                stack.append(i + o)
            }
        }
    }}}}}

    var edges = [UInt8](repeating: 0, count: w * h)
    for y in 0..<h {
        let row = (y + 1) * ps + 1
        for x in 0..<w where map[row + x] == 2 { edges[y * w + x] = 255 }
    }
    return edges
}

/// A raw pointer that may cross into `concurrentPerform` workers; each worker writes disjoint rows.
struct CannyPointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
    init(_ p: UnsafePointer<T>) { self.p = UnsafeMutablePointer(mutating: p) }
}

/// Runs `body` over `0..<rows` split into contiguous chunks on all cores (serially for small inputs).
func cannyParallelRows(_ rows: Int, minRowsPerChunk: Int = 16, _ body: (Range<Int>) -> Void) {
    let chunks = min(max(rows / minRowsPerChunk, 1), 64)
    if chunks == 1 { body(0..<rows); return }
    let per = (rows + chunks - 1) / chunks
    // The workers only read shared state and write disjoint rows through raw pointers.
    withoutActuallyEscaping(body) { body in
        let work = CannyUncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let start = c * per, end = min(rows, start + per)
            if start < end { work.value(start..<end) }
        }
    }
}

struct CannyUncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
