// Shared by the reference kernels of convolution and pooling: index and window iteration.

/// Iterates over every index of `shape`, row-major, calling `body` with the coordinates.
@inline(__always)
func forEachIndex(_ shape: [Int], _ body: ([Int]) -> Void) {
    let n = shape.reduce(1, *)
    guard n > 0 else { return }
    var c = [Int](repeating: 0, count: shape.count)
    for _ in 0..<n {
        body(c)
        var d = shape.count - 1
        while d >= 0 {
            c[d] += 1
            if c[d] < shape[d] { break }
            c[d] = 0
            d -= 1
        }
    }
}

func windowGeometry(_ ctx: RefContext, spatial: [Int], kernel: [Int], ceil: Bool) throws -> WindowGeometry {
    do {
        return try WindowGeometry.resolve(input: spatial, kernel: kernel, strides: ctx.ints("strides"), dilations: ctx.ints("dilations"),
                                          pads: ctx.ints("pads"), autoPad: ctx.string("auto_pad"), ceilMode: ceil)
    } catch {
        switch error { case .message(let m): throw ctx.fail(m) }
    }
}

/// Every window of a pool over x [N, C, D…]: its output index, the input positions inside the
/// image in tap order (the flat row-major index into x, and the same with the spatial
/// dimensions column-major, for storage_order = 1), and how many taps fall inside the padded
/// input.
func forEachWindow(_ ctx: RefContext, x: HostTensor, _ body: (_ out: Int, _ positions: [(flat: Int, column: Int)], _ padded: Int) -> Void) throws {
    let n = x.shape[0], c = x.shape[1], spatial = Array(x.shape[2...])
    guard let kernel = ctx.ints("kernel_shape") else { throw ctx.fail("missing kernel_shape") }
    let g = try windowGeometry(ctx, spatial: spatial, kernel: kernel, ceil: ctx.int("ceil_mode") != 0)
    let outPlane = g.output.reduce(1, *), inPlane = spatial.reduce(1, *)
    let inStrides = strides(spatial)
    var colStrides = Array(repeating: 1, count: spatial.count)
    for d in 1..<max(1, spatial.count) { colStrides[d] = colStrides[d - 1] * spatial[d - 1] }
    var taps: [[Int]] = []
    forEachIndex(kernel) { taps.append($0) }
    var outCoords: [[Int]] = []
    forEachIndex(g.output) { outCoords.append($0) }
    for plane in 0..<(n * c) {
        for (oi, o) in outCoords.enumerated() {
            var positions: [(flat: Int, column: Int)] = [], padded = 0
            for t in taps {
                var offset = 0, colOffset = 0, inside = true, inPadded = true
                for d in 0..<spatial.count {
                    let p = o[d] * g.strides[d] - g.padsBegin[d] + t[d] * g.dilations[d]
                    if p < -g.padsBegin[d] || p >= spatial[d] + g.padsEnd[d] { inPadded = false }
                    if p < 0 || p >= spatial[d] { inside = false } else {
                        offset += p * inStrides[d]
                        colOffset += p * colStrides[d]
                    }
                }
                if inPadded { padded += 1 }
                if inside { positions.append((plane * inPlane + offset, plane * inPlane + colOffset)) }
            }
            body(plane * outPlane + oi, positions, padded)
        }
    }
}
