import Foundation

// Reference kernels (Double precision, written for clarity) of the conv family (see Conv.swift).

// Conv: x [N, C, D…], w [M, C/group, k…], b [M] → y [N, M, D'…]
func conv(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), w = try ctx.input(1), b = ctx.optional(2)
    let n = x.shape[0], c = x.shape[1], spatial = Array(x.shape[2...])
    let m = w.shape[0], cg = w.shape[1], kernel = Array(w.shape[2...])
    let group = ctx.int("group")
    let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: false)
    let outSpatial = g.output
    let outPlane = outSpatial.reduce(1, *), inPlane = spatial.reduce(1, *), kSize = kernel.reduce(1, *)
    var y = HostTensor.zeros(x.dtype, [n, m] + outSpatial)
    let inStrides = strides(spatial)
    let mPerGroup = m / group
    // Offsets of every kernel tap, per spatial dimension.
    var taps: [[Int]] = []
    forEachIndex(kernel) { taps.append($0) }
    var outCoords: [[Int]] = []
    forEachIndex(outSpatial) { outCoords.append($0) }
    let dims = spatial.count
    for ni in 0..<n {
        for mi in 0..<m {
            let gi = mi / mPerGroup
            let bias = b?.f[mi] ?? 0
            for (oi, o) in outCoords.enumerated() {
                var acc = bias
                for (ti, t) in taps.enumerated() {
                    var offset = 0, inside = true
                    for d in 0..<dims {
                        let p = o[d] * g.strides[d] - g.padsBegin[d] + t[d] * g.dilations[d]
                        if p < 0 || p >= spatial[d] { inside = false; break }
                        offset += p * inStrides[d]
                    }
                    if !inside {
                        // Padding is zeros that take part: 0 × inf and 0 × NaN are NaN.
                        for ci in 0..<cg { acc += 0 * w.f[(mi * cg + ci) * kSize + ti] }
                        continue
                    }
                    for ci in 0..<cg {
                        let xc = gi * cg + ci
                        acc += x.f[(ni * c + xc) * inPlane + offset] * w.f[(mi * cg + ci) * kSize + ti]
                    }
                }
                y.f[(ni * m + mi) * outPlane + oi] = acc
            }
        }
    }
    return [y]
}

/// Calls body(xIndex, wIndex, yIndex) for every multiply-add of Conv(x, w) — the forward
/// kernel's loop nest — so each backward kernel is the same sum read another way.
func forEachConvProduct(_ ctx: RefContext, x xShape: [Int], w wShape: [Int],
                                _ body: (Int, Int, Int) -> Void) throws {
    let n = xShape[0], c = xShape[1], spatial = Array(xShape[2...])
    let m = wShape[0], cg = wShape[1], kernel = Array(wShape[2...])
    let group = max(ctx.int("group"), 1)
    let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: false)
    let outPlane = g.output.reduce(1, *), inPlane = spatial.reduce(1, *), kSize = kernel.reduce(1, *)
    let inStrides = strides(spatial)
    var taps: [[Int]] = []
    forEachIndex(kernel) { taps.append($0) }
    var outCoords: [[Int]] = []
    forEachIndex(g.output) { outCoords.append($0) }
    let mPerGroup = m / group
    for ni in 0..<n {
        for mi in 0..<m {
            let gi = mi / mPerGroup
            for (oi, o) in outCoords.enumerated() {
                let yi = (ni * m + mi) * outPlane + oi
                for (ti, t) in taps.enumerated() {
                    var offset = 0, inside = true
                    for d in 0..<spatial.count {
                        let p = o[d] * g.strides[d] - g.padsBegin[d] + t[d] * g.dilations[d]
                        if p < 0 || p >= spatial[d] { inside = false; break }
                        offset += p * inStrides[d]
                    }
                    guard inside else { continue }
                    for ci in 0..<cg {
                        body((ni * c + gi * cg + ci) * inPlane + offset, (mi * cg + ci) * kSize + ti, yi)
                    }
                }
            }
        }
    }
}

func convGradData(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), w = try ctx.input(1), x = try ctx.input(2)
    var dx = HostTensor.zeros(x.dtype, x.shape)
    try forEachConvProduct(ctx, x: x.shape, w: w.shape) { xi, wi, yi in dx.f[xi] += dy.f[yi] * w.f[wi] }
    return [dx]
}

func convGradWeight(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), dy = try ctx.input(1), w = try ctx.input(2)
    var dw = HostTensor.zeros(w.dtype, w.shape)
    try forEachConvProduct(ctx, x: x.shape, w: w.shape) { xi, wi, yi in dw.f[wi] += dy.f[yi] * x.f[xi] }
    return [dw]
}

func convGradBias(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0)
    let m = dy.shape[1]
    let (count, at) = channelElements(dy.shape)
    var db = HostTensor.zeros(dy.dtype, [m])
    for ch in 0..<m { db.f[ch] = (0..<count).map { dy.f[at(ch, $0)] }.reduce(0, +) }
    return [db]
}

/// kiln.FusedConv: Conv on the first three inputs with Conv's attributes, then the epilogue.
let fusedConvReference: RefKernel = { ctx in
    let convAttributes = ctx.node.attributes.filter { ["auto_pad", "kernel_shape", "pads", "strides", "dilations", "group"].contains($0.key) }
    let y = try runPart(ctx, "Conv", Array(ctx.inputs.prefix(3)), attributes: convAttributes)
    return [try fusedEpilogue(ctx, y)]
}
