import Dispatch

// Image resizing that reproduces ComfyUI's ImageScale node, i.e. `comfy.utils.common_upscale` on the
// image moved to [B,C,H,W]:
//  * crop "center" first narrows the source to the target aspect ratio:
//      old_aspect = W/H, new_aspect = width/height (float64)
//      old_aspect > new_aspect: x = round((W - W * (new_aspect / old_aspect)) / 2), keep columns x..<W-x
//      old_aspect < new_aspect: y = round((H - H * (old_aspect / new_aspect)) / 2), keep rows y..<H-y
//    with Python's round (half to even).
//  * "nearest-exact", "bilinear", "bicubic", "area" are `torch.nn.functional.interpolate(size=(h, w))`
//    with align_corners False and no antialiasing; scale per axis = Float(in) / Float(out):
//      nearest-exact: src = min(floor((dst + 0.5) * scale), in - 1)
//      bilinear:      src = max(scale * (dst + 0.5) - 0.5, 0); taps i0 = floor(src), i1 = min(i0 + 1, in - 1)
//      bicubic:       src = scale * (dst + 0.5) - 0.5 (not clamped); Keys cubic with A = -0.75 on taps
//                     floor(src) - 1 ... floor(src) + 2, each clamped into 0..<in. The result is NOT clamped
//                     (ComfyUI does not clamp either), so it can leave 0...1 slightly near sharp edges.
//      area:          adaptive average pooling: window floor(o * in / out) ..< ceil((o + 1) * in / out).
//    All four are separable with the horizontal taps innermost, which is also the order in which torch's
//    CPU kernel accumulates, so the results agree to float rounding (FMA contraction in torch's
//    vectorised build can move the last bit).
//  * "lanczos" is ComfyUI's PIL path: uint8 by truncation of clip(255 x), PIL's LANCZOS (a = 3) resize with
//    its 8-bit fixed-point passes, back to Float u8/255 (see ImageScaleLanczos.swift).

/// ComfyUI's ImageScale `upscale_method` values, in ComfyUI's order.
public enum ScaleMethod: String, CaseIterable, Sendable {
    case nearestExact = "nearest-exact"
    case bilinear
    case area
    case bicubic
    case lanczos
}

/// ComfyUI's ImageScale `crop` values.
public enum CropMode: String, CaseIterable, Sendable {
    case disabled
    case center
}

/// Limits on the output of `scaleImage`: each side at most ComfyUI's MAX_RESOLUTION (16384), and the
/// whole output batch at most 2^28 pixels (3 GiB as Float RGB).
public enum ImageScaleLimits {
    public static let maxSide = 16384
    public static let maxOutputPixels = 1 << 28
}

/// Resizes every image of the batch to `width` x `height` like ComfyUI's ImageScale node (see the notes
/// at the top of this file). Works for any channel count (lanczos: see ImageScaleLanczos.swift).
///
/// The node's "0 keeps the aspect ratio" convention is not applied here; use `imageScaleTargetSize`.
/// - Throws: `ImagingError` for sizes outside 1...16384, an output over 2^28 pixels, an empty input, or
///   a center crop that would leave nothing.
public func scaleImage(_ image: ImageBatch, width: Int, height: Int, method: ScaleMethod,
                       crop: CropMode) throws -> ImageBatch {
    let maxSide = ImageScaleLimits.maxSide
    guard (1...maxSide).contains(width), (1...maxSide).contains(height) else {
        throw ImagingError("ImageScale: target size \(width)x\(height) is out of range; width and height must be in 1...\(maxSide)")
    }
    guard image.batch >= 0, image.height >= 0, image.width >= 0, image.channels >= 1,
          image.pixels.count == image.batch * image.height * image.width * image.channels else {
        throw ImagingError("ImageScale: image shape [\(image.batch), \(image.height), \(image.width), \(image.channels)] does not match its \(image.pixels.count) values")
    }
    let (outPixels, overflow) = (width * height).multipliedReportingOverflow(by: image.batch)
    guard !overflow, outPixels <= ImageScaleLimits.maxOutputPixels else {
        throw ImagingError("ImageScale: output \(image.batch) x \(width)x\(height) exceeds the limit of \(ImageScaleLimits.maxOutputPixels) pixels")
    }
    guard image.height >= 1, image.width >= 1 else {
        throw ImagingError("ImageScale: cannot scale an empty \(image.width)x\(image.height) image to \(width)x\(height)")
    }

    if image.batch == 0 {
        return ImageBatch(batch: 0, height: height, width: width, channels: image.channels)
    }
    let region = try imageScaleCropRegion(sourceWidth: image.width, sourceHeight: image.height,
                                          width: width, height: height, crop: crop)
    if method == .lanczos {
        return imageScaleLanczos(image, region: region, width: width, height: height)
    }
    let xTaps = ImageScaleTaps(method: method, inSize: region.width, outSize: width)
    let yTaps = ImageScaleTaps(method: method, inSize: region.height, outSize: height)
    return imageScaleSeparable(image, region: region, xTaps: xTaps, yTaps: yTaps,
                               normalizeArea: method == .area)
}

/// ComfyUI ImageScale's handling of a 0 side: width 0 -> max(1, round(W * height / H)), height 0 ->
/// max(1, round(H * width / W)) (Python round, half to even); both 0 means "return the image unchanged",
/// reported here as nil.
public func imageScaleTargetSize(sourceWidth: Int, sourceHeight: Int, width: Int, height: Int) -> (width: Int, height: Int)? {
    if width == 0 && height == 0 { return nil }
    if width == 0 {
        let w = (Double(sourceWidth) * Double(height) / Double(sourceHeight)).rounded(.toNearestOrEven)
        return (max(1, Int(w)), height)
    }
    if height == 0 {
        let h = (Double(sourceHeight) * Double(width) / Double(sourceWidth)).rounded(.toNearestOrEven)
        return (width, max(1, Int(h)))
    }
    return (width, height)
}

/// The source rectangle common_upscale keeps for `crop` (x, y, width, height).
public struct ImageScaleRegion: Equatable, Sendable {
    public var x: Int, y: Int, width: Int, height: Int
}

public func imageScaleCropRegion(sourceWidth: Int, sourceHeight: Int, width: Int, height: Int,
                                 crop: CropMode) throws -> ImageScaleRegion {
    guard crop == .center else { return ImageScaleRegion(x: 0, y: 0, width: sourceWidth, height: sourceHeight) }
    let oldW = Double(sourceWidth), oldH = Double(sourceHeight)
    let oldAspect = oldW / oldH, newAspect = Double(width) / Double(height)
    var x = 0, y = 0
    if oldAspect > newAspect {
        x = Int(((oldW - oldW * (newAspect / oldAspect)) / 2).rounded(.toNearestOrEven))
    } else if oldAspect < newAspect {
        y = Int(((oldH - oldH * (oldAspect / newAspect)) / 2).rounded(.toNearestOrEven))
    }
    let region = ImageScaleRegion(x: x, y: y, width: sourceWidth - 2 * x, height: sourceHeight - 2 * y)
    guard region.width >= 1, region.height >= 1 else {
        throw ImagingError("ImageScale: center crop of a \(sourceWidth)x\(sourceHeight) image to the aspect ratio of \(width)x\(height) leaves nothing")
    }
    return region
}

/// Per-output-coordinate source taps along one axis: `count` taps each, flattened.
struct ImageScaleTaps {
    var count: Int
    var index: [Int]
    var weight: [Float]

    init(method: ScaleMethod, inSize: Int, outSize: Int) {
        let scale = Float(inSize) / Float(outSize)
        switch method {
        case .nearestExact:
            count = 1
            index = (0..<outSize).map { o in
                let v = Float((Double(o) + 0.5) * Double(scale)).rounded(.down)
                return min(Int(v), inSize - 1)
            }
            weight = [Float](repeating: 1, count: outSize)
        case .bilinear:
            count = 2
            index = []; weight = []
            index.reserveCapacity(2 * outSize); weight.reserveCapacity(2 * outSize)
            for o in 0..<outSize {
                var src = scale * (Float(o) + 0.5) - 0.5
                if src < 0 { src = 0 }
                let i0 = Int(src)
                let i1 = i0 + (i0 < inSize - 1 ? 1 : 0)
                let l1 = min(max(src - Float(i0), 0), 1)
                index += [i0, i1]
                weight += [1 - l1, l1]
            }
        case .bicubic:
            count = 4
            index = []; weight = []
            index.reserveCapacity(4 * outSize); weight.reserveCapacity(4 * outSize)
            let a: Float = -0.75
            func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }          // |x| <= 1
            func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }     // 1 < |x| < 2
            for o in 0..<outSize {
                let src = scale * (Float(o) + 0.5) - 0.5
                let i = min(Int(src.rounded(.down)), inSize - 1)
                let t = min(max(src - Float(i), 0), 1)
                for k in -1...2 { index.append(min(max(i + k, 0), inSize - 1)) }
                weight += [far(t + 1), near(t), near(1 - t), far(2 - t)]
            }
        case .area:
            // Variable windows; padded to the widest with zero-weight taps on the last index.
            let starts = (0..<outSize).map { ($0 * inSize) / outSize }
            let ends = (0..<outSize).map { (($0 + 1) * inSize + outSize - 1) / outSize }
            count = zip(starts, ends).map { $1 - $0 }.max() ?? 1
            index = []; weight = []
            index.reserveCapacity(count * outSize); weight.reserveCapacity(count * outSize)
            for o in 0..<outSize {
                for k in 0..<count {
                    let inside = starts[o] + k < ends[o]
                    index.append(inside ? starts[o] + k : ends[o] - 1)
                    weight.append(inside ? 1 : 0)
                }
            }
        case .lanczos:
            preconditionFailure("lanczos is resampled by imageScaleLanczos")
        }
    }

    /// Window size of output `o` for area pooling (number of non-zero taps).
    func windowSize(_ o: Int) -> Int {
        var n = 0
        for k in 0..<count where weight[o * count + k] != 0 { n += 1 }
        return n
    }
}

/// Horizontal pass (into a [region.height, width, C] scratch per image), then vertical pass.
func imageScaleSeparable(_ image: ImageBatch, region: ImageScaleRegion, xTaps: ImageScaleTaps,
                         yTaps: ImageScaleTaps, normalizeArea: Bool) -> ImageBatch {
    let c = image.channels, outW = xTaps.index.count / xTaps.count, outH = yTaps.index.count / yTaps.count
    var out = ImageBatch(batch: image.batch, height: outH, width: outW, channels: c)
    let rh = region.height
    var tmp = [Float](repeating: 0, count: rh * outW * c)
    let xDiv: [Float] = normalizeArea ? (0..<outW).map { Float(xTaps.windowSize($0)) } : []
    let yDiv: [Float] = normalizeArea ? (0..<outH).map { Float(yTaps.windowSize($0)) } : []

    // Plain buffers for the taps so the workers can share them (read only).
    func buffer<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
        let b = UnsafeMutableBufferPointer<T>.allocate(capacity: max(a.count, 1))
        _ = b.initialize(from: a)
        return b
    }
    let xi = buffer(xTaps.index), xw = buffer(xTaps.weight), yi = buffer(yTaps.index), yw = buffer(yTaps.weight)
    let xd = buffer(xDiv), yd = buffer(yDiv)
    defer { [xi, yi].forEach { $0.deallocate() }; [xw, yw, xd, yd].forEach { $0.deallocate() } }

    image.pixels.withUnsafeBufferPointer { srcBuf in
    out.pixels.withUnsafeMutableBufferPointer { dstBuf in
    tmp.withUnsafeMutableBufferPointer { tmpBuf in
        let src = CannyPointer(srcBuf.baseAddress!), tmpP = CannyPointer(tmpBuf.baseAddress!)
        let dst = CannyPointer(dstBuf.baseAddress!)
        let xip = CannyPointer(xi.baseAddress!), xwp = CannyPointer(xw.baseAddress!)
        let yip = CannyPointer(yi.baseAddress!), ywp = CannyPointer(yw.baseAddress!)
        let xdp = normalizeArea ? CannyPointer(xd.baseAddress!) : nil
        let ydp = normalizeArea ? CannyPointer(yd.baseAddress!) : nil
        let nx = xTaps.count, ny = yTaps.count
        let inW = image.width, inPlane = image.height * image.width * c, outPlane = outH * outW * c

        for b in 0..<image.batch {
            let s = src.p + b * inPlane
            // Horizontal: tmp[r, ox, ch] = sum_k wx[k] * src[region.y + r, xi[k], ch]
            cannyParallelRows(rh, minRowsPerChunk: max(1, 4096 / max(1, outW * c))) { rows in
                for r in rows {
                    let srow = s + ((region.y + r) * inW + region.x) * c
                    let trow = tmpP.p + r * outW * c
                    for ox in 0..<outW {
                        let ti = xip.p + ox * nx, tw = xwp.p + ox * nx
                        for ch in 0..<c {
                            var acc = srow[ti[0] * c + ch] * tw[0]
                            var k = 1
                            while k < nx { acc += srow[ti[k] * c + ch] * tw[k]; k += 1 }
                            trow[ox * c + ch] = acc
                        }
                    }
                }
            }
            // Vertical: out[oy, ox, ch] = sum_k wy[k] * tmp[yi[k], ox, ch]
            let d = dst.p + b * outPlane
            cannyParallelRows(outH, minRowsPerChunk: max(1, 4096 / max(1, outW * c))) { rows in
                let rowLen = outW * c
                for oy in rows {
                    let ti = yip.p + oy * ny, tw = ywp.p + oy * ny
                    let drow = d + oy * rowLen
                    let r0 = tmpP.p + ti[0] * rowLen, w0 = tw[0]
                    for j in 0..<rowLen { drow[j] = r0[j] * w0 }
                    var k = 1
                    while k < ny {
                        let rk = tmpP.p + ti[k] * rowLen, wk = tw[k]
                        for j in 0..<rowLen { drow[j] += rk[j] * wk }
                        k += 1
                    }
                    if let xdp, let ydp {
                        // torch: sum / kh / kw
                        let kh = ydp.p[oy]
                        for ox in 0..<outW {
                            let kw = xdp.p[ox]
                            for ch in 0..<c { drow[ox * c + ch] = drow[ox * c + ch] / kh / kw }
                        }
                    }
                }
            }
        }
    }}}
    return out
}
