import Foundation

// Resize-13/18/19 (opset 11's form too; opset 10's is upgraded on import): X resized along
// `axes` (all by default) to `sizes` or by `scales` (inputs known at compile time), each
// output coordinate mapped back by coordinate_transformation_mode and read by nearest,
// linear or cubic interpolation (separable: one axis after another). Antialiasing is not
// supported (a clear error). Nearest without tf_crop_and_resize runs as an index map.

let resizeModes = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"]

let resizeSchema: OpSchema = {
    var s = OpSchema("Resize", inputs: 1...4, attributes: [
        .int("antialias", 0), .optional("axes", .ints), .string("coordinate_transformation_mode", "half_pixel"),
        .float("cubic_coeff_a", -0.75), .int("exclude_outside", 0), .float("extrapolation_value", 0),
        .string("keep_aspect_ratio_policy", "stretch"), .string("mode", "nearest"), .string("nearest_mode", "round_prefer_floor"),
    ]) { ctx in
        let x = try ctx.input(0)
        guard x.dtype != .bool else { throw ctx.error("Resize is not defined on bool tensors") }
        guard ["nearest", "linear", "cubic"].contains(ctx.string("mode")) else { throw ctx.error("mode must be nearest, linear or cubic, got '\(ctx.string("mode"))'") }
        guard resizeModes.contains(ctx.string("coordinate_transformation_mode")) else {
            throw ctx.error("coordinate_transformation_mode '\(ctx.string("coordinate_transformation_mode"))' is not one of \(resizeModes.joined(separator: ", "))")
        }
        guard ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"].contains(ctx.string("nearest_mode")) else {
            throw ctx.error("nearest_mode '\(ctx.string("nearest_mode"))' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil")
        }
        guard ctx.int("antialias") == 0 else { throw ctx.error("antialias is not supported") }
        let plan = try ResizePlan(ctx, rank: x.rank, inputSizes: x.shape.map(\.value))
        var shape = x.shape
        for (i, a) in plan.axes.enumerated() where !(plan.scales[i] == 1 && plan.sizes[i] == nil) {
            guard plan.sizes[i] != nil || x.shape[a].value != nil else { throw ctx.error("axis \(a) of size \(x.shape[a]) cannot be scaled by \(plan.scales[i])") }
            shape[a] = Dim(plan.outputSize(i, x.shape[a].value))
        }
        ctx.setOutput(0, TensorType(x.dtype, shape))
    }
    s.compileTimeInputs = [1, 2, 3]
    return s
}()

/// What a Resize node does per resized axis: the axes, their scales, the sizes asked for (nil
/// when scales decide) and the region of interest (tf_crop_and_resize).
struct ResizePlan {
    var axes: [Int]
    var scales: [Double]
    var sizes: [Int?]
    var roiStart: [Double], roiEnd: [Double]

    init(_ ctx: InferenceContext, rank: Int, inputSizes: [Int?]) throws {
        axes = try (ctx.ints("axes") ?? Array(0..<rank)).map { try ctx.axis($0, rank: rank, what: "axes value") }
        let n = axes.count
        let given = { (i: Int) in ctx.hasInput(i) && ctx.optionalInput(i)?.shape.elementCount.value != 0 }
        if given(3) {
            let s = try ctx.constantInts(3, what: "sizes")
            guard s.count == n, s.allSatisfy({ $0 >= 0 }) else { throw ctx.error("sizes must hold \(n) non-negative values, got \(s)") }
            let inputs = try axes.map { a -> Int in
                guard let d = inputSizes[a] else { throw ctx.error("axis \(a) has a symbolic size: sizes cannot be resolved") }
                return d
            }
            var ratios = zip(s, inputs).map { Double($0) / Double(max($1, 1)) }
            switch ctx.string("keep_aspect_ratio_policy") {
            case "stretch": sizes = s
            case "not_larger", "not_smaller":
                let r = ctx.string("keep_aspect_ratio_policy") == "not_larger" ? ratios.min() ?? 1 : ratios.max() ?? 1
                ratios = Array(repeating: r, count: n)
                sizes = inputs.map { Int((r * Double($0) + 0.5).rounded(.down)) }
            default: throw ctx.error("keep_aspect_ratio_policy must be stretch, not_larger or not_smaller")
            }
            scales = ratios
        } else if given(2) {
            guard let s = ctx.knownFloats(2) else {
                throw ctx.error("scales (input 2, '\(ctx.node.inputs[2])') must be a constant for Kiln to infer shapes")
            }
            guard s.count == n, s.allSatisfy({ $0 > 0 }) else { throw ctx.error("scales must hold \(n) positive values, got \(s)") }
            scales = s
            sizes = Array(repeating: nil, count: n)
        } else {
            throw ctx.error("needs scales (input 2) or sizes (input 3)")
        }
        roiStart = Array(repeating: 0, count: n)
        roiEnd = Array(repeating: 1, count: n)
        if ctx.string("coordinate_transformation_mode") == "tf_crop_and_resize" {
            guard let roi = ctx.knownFloats(1), roi.count == 2 * n else { throw ctx.error("tf_crop_and_resize needs a constant roi of \(2 * n) values") }
            roiStart = Array(roi[..<n])
            roiEnd = Array(roi[n...])
        }
    }

    /// The output length of resized axis `i` of input length `d`.
    func outputSize(_ i: Int, _ d: Int?) -> Int {
        if let s = sizes[i] { return s }
        return Int((Double(d ?? 0) * scales[i]).rounded(.down))  // d is static here (checked by the schema)
    }
}

/// For each output index along one axis, the input indices and weights it reads, or nil
/// where tf_crop_and_resize extrapolates.
func resizeTaps(_ ctx: RefContext, inLen: Int, outLen: Int, scale: Double, roi: (Double, Double)) -> [[(Int, Double)]?] {
    let mode = ctx.string("coordinate_transformation_mode"), method = ctx.has("mode") ? ctx.string("mode") : "nearest"
    let a = ctx.has("cubic_coeff_a") ? ctx.float("cubic_coeff_a") : -0.75
    let excludeOutside = ctx.int("exclude_outside") != 0
    let outWidth = scale * Double(inLen)  // as the operator's formulas read it (not rounded)
    return (0..<outLen).map { o -> [(Int, Double)]? in
        let xr = Double(o)
        var x: Double
        switch mode {
        case "asymmetric": x = xr / scale
        case "align_corners": x = outWidth == 1 ? 0 : xr * Double(inLen - 1) / (outWidth - 1)
        case "pytorch_half_pixel": x = outLen > 1 ? (xr + 0.5) / scale - 0.5 : 0
        case "half_pixel_symmetric":
            let center = Double(inLen) / 2
            x = center * (1 - Double(outLen) / outWidth) + (xr + 0.5) / scale - 0.5
        case "tf_crop_and_resize":
            let (s, e) = roi, span = Double(inLen - 1)
            x = outLen > 1 ? s * span + xr * (e - s) * span / Double(outLen - 1) : 0.5 * (s + e) * span
            if x < 0 || x > span { return nil }
        default: x = (xr + 0.5) / scale - 0.5
        }
        let base = Int(x.rounded(.down)), r = x - Double(base)
        func clamped(_ i: Int) -> Int { Swift.min(Swift.max(i, 0), inLen - 1) }
        switch method {
        case "nearest":
            let up: Bool = switch ctx.string("nearest_mode") {
            case "round_prefer_ceil": r >= 0.5
            case "floor": false
            case "ceil": r > 0
            default: r > 0.5
            }
            return [(clamped(up ? base + 1 : base), 1)]
        case "linear":
            // A neighbour of weight 0 is not read: a point on a sample is that sample, even
            // when the next one is infinite or NaN.
            return [(clamped(base), 1 - r), (clamped(base + 1), r)].filter { $0.1 != 0 }
        default:
            // Keys' cubic convolution with coefficient a, at distances 1 + r, r, 1 − r, 2 − r.
            func w(_ d: Double) -> Double {
                let t = abs(d)
                return t <= 1 ? ((a + 2) * t - (a + 3)) * t * t + 1 : t < 2 ? ((a * t - 5 * a) * t + 8 * a) * t - 4 * a : 0
            }
            var taps = (-1...2).map { k in (base + k, w(Double(k) - r)) }
            if excludeOutside {
                taps = taps.map { ($0.0, (0..<inLen).contains($0.0) ? $0.1 : 0) }
                let sum = taps.reduce(0) { $0 + $1.1 }
                taps = taps.map { ($0.0, $0.1 / sum) }
            }
            return taps.filter { $0.1 != 0 }.map { (clamped($0.0), $0.1) }
        }
    }
}

let resizeReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let outShape = ctx.outShape()
    let rank = x.shape.count
    let axes = (ctx.ints("axes") ?? Array(0..<rank)).map { ctx.axis($0, rank: rank) }
    let roi = ctx.optional(1).map { $0.f } ?? []
    let scales = ctx.optional(2).map { $0.f } ?? [], sizes = ctx.optional(3).map { $0.i } ?? []
    var values = (0..<x.count).map { x.value($0) }, shape = x.shape
    let extrapolation = ctx.float("extrapolation_value")
    for (i, a) in axes.enumerated() where !(shape[a] == outShape[a] && (scales.isEmpty || scales[i] == 1)
                                            && ctx.string("coordinate_transformation_mode") != "tf_crop_and_resize") {
        let inLen = shape[a], outLen = outShape[a]
        // The scale the coordinates use: the one given, else the sizes' ratio (under
        // keep_aspect_ratio_policy, the smallest or largest of them for every axis).
        let ratios = axes.indices.map { Double(sizes.isEmpty ? 1 : sizes[$0]) / Double(max(x.shape[axes[$0]], 1)) }
        let scale: Double = if !scales.isEmpty { scales[i] } else {
            switch ctx.string("keep_aspect_ratio_policy") {
            case "not_larger": ratios.min()!
            case "not_smaller": ratios.max()!
            default: ratios[i]
            }
        }
        let taps = resizeTaps(ctx, inLen: inLen, outLen: outLen, scale: scale,
                              roi: roi.count == 2 * axes.count ? (roi[i], roi[axes.count + i]) : (0, 1))
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var next = [Double](repeating: 0, count: outer * outLen * inner)
        for o in 0..<outer {
            for (k, t) in taps.enumerated() {
                for j in 0..<inner {
                    next[(o * outLen + k) * inner + j] = t.map { $0.reduce(0) { s, p in s + p.1 * values[(o * inLen + p.0) * inner + j] } } ?? extrapolation
                }
            }
        }
        values = next
        shape[a] = outLen
    }
    if x.isFloat { return [HostTensor(dtype: x.dtype, shape: outShape, f: values)] }
    return [HostTensor(dtype: x.dtype, shape: outShape, i: values.map { wrap(TensorData.clampedInt64($0.rounded()), x.dtype) })]
}
