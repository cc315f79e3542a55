
// Reference kernels for data movement and shape ops. Row-major throughout.

/// Ops that only reinterpret the shape: the output type (from inference) says the shape.
private let reshapeLike: RefKernel = { ctx in [try ctx.input(0).reshaped(ctx.outShape())] }

private func transpose(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0)
    let r = x.shape.count
    let perm = ctx.ints("perm") ?? Array((0..<r).reversed())
    let outShape = perm.map { x.shape[$0] }
    let inStrides = strides(x.shape)
    var idx: [Int] = []
    idx.reserveCapacity(x.count)
    forEachIndex(outShape) { o in
        var k = 0
        for d in 0..<r { k += o[d] * inStrides[perm[d]] }
        idx.append(k)
    }
    return [x.gather(idx, shape: outShape)]
}

private func slice(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0)
    let starts = try ctx.input(1).i.map(Int.init), ends = try ctx.input(2).i.map(Int.init)
    let axes = ctx.optional(3).map { $0.i.map { ctx.axis(Int($0), rank: x.shape.count) } } ?? Array(0..<starts.count)
    let steps = ctx.optional(4).map { $0.i.map(Int.init) } ?? Array(repeating: 1, count: starts.count)
    var first = Array(repeating: 0, count: x.shape.count)
    var step = Array(repeating: 1, count: x.shape.count)
    var outShape = x.shape
    for (k, a) in axes.enumerated() {
        let r = sliceRange(start: starts[k], end: ends[k], step: steps[k], dim: x.shape[a])
        first[a] = r.start
        step[a] = steps[k]
        outShape[a] = r.count
    }
    let inStrides = strides(x.shape)
    var idx: [Int] = []
    forEachIndex(outShape) { o in
        var k = 0
        for d in 0..<o.count { k += (first[d] + o[d] * step[d]) * inStrides[d] }
        idx.append(k)
    }
    return [x.gather(idx, shape: outShape)]
}

// Pad: constant, reflect (mirror without repeating the edge), edge (repeat it), wrap.
private func pad(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0)
    let r = x.shape.count
    let given = try ctx.input(1).i.map(Int.init)
    let axes = ctx.optional(3).map { $0.i.map { ctx.axis(Int($0), rank: r) } } ?? Array(0..<r)
    var begin = Array(repeating: 0, count: r), end = Array(repeating: 0, count: r)
    for (k, a) in axes.enumerated() {
        begin[a] = given[k]
        end[a] = given[k + axes.count]
    }
    let mode = ctx.string("mode")
    let outShape = (0..<r).map { x.shape[$0] + begin[$0] + end[$0] }
    let value = ctx.optional(2)
    let inStrides = strides(x.shape)
    var out = HostTensor.zeros(x.dtype, outShape)
    var k = 0
    forEachIndex(outShape) { o in
        var src = 0, outside = false
        for d in 0..<r {
            var p = o[d] - begin[d]
            let n = x.shape[d]
            if p < 0 || p >= n {
                switch mode {
                case "reflect":
                    if n == 1 { p = 0 } else {
                        let period = 2 * (n - 1)
                        p = ((p % period) + period) % period
                        if p >= n { p = period - p }
                    }
                case "edge": p = min(max(p, 0), n - 1)
                case "wrap": p = ((p % n) + n) % n
                default: outside = true
                }
            }
            src += p * inStrides[d]
        }
        if outside {
            if out.isFloat { out.f[k] = value?.f.first ?? 0 } else { out.i[k] = value?.i.first ?? 0 }
        } else if out.isFloat { out.f[k] = x.f[src] } else { out.i[k] = x.i[src] }
        k += 1
    }
    return [out]
}

private func concat(_ ctx: RefContext) throws -> [HostTensor] {
    let xs = try (0..<ctx.inputs.count).map { try ctx.input($0) }
    let shape = ctx.outShape()
    let axis = ctx.axis(ctx.int("axis"), rank: shape.count)
    let outer = shape[..<axis].reduce(1, *)
    var out = HostTensor.zeros(xs[0].dtype, shape)
    var k = 0
    for o in 0..<outer {
        for x in xs {
            let chunk = x.shape[axis...].reduce(1, *)
            for j in 0..<chunk {
                if out.isFloat { out.f[k] = x.f[o * chunk + j] } else { out.i[k] = x.i[o * chunk + j] }
                k += 1
            }
        }
    }
    return [out]
}

// Gather: out[i…, j…, k…] = data[i…, indices[j…], k…] along `axis`; negative indices count back.
private func gather(_ ctx: RefContext) throws -> [HostTensor] {
    let x = try ctx.input(0), ind = try ctx.input(1)
    let axis = ctx.axis(ctx.int("axis"), rank: x.shape.count)
    let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
    var idx: [Int] = []
    idx.reserveCapacity(outer * ind.count * inner)
    for o in 0..<outer {
        for raw in ind.i {
            var j = Int(raw)
            if j < 0 { j += len }
            guard j >= 0 && j < len else { throw ctx.fail("index \(raw) is out of range for axis \(axis) of size \(len)") }
            for i in 0..<inner { idx.append((o * len + j) * inner + i) }
        }
    }
    return [x.gather(idx, shape: ctx.outShape())]
}

/// ReduceMean and ReduceL2: `finish` turns the sum over the reduced axes (of x, or of x² for
/// L2) into the result.
private func reduction(squares: Bool, _ finish: @escaping @Sendable (Double, Double) -> Double) -> RefKernel {
    { ctx in
        let x = try ctx.input(0)
        let r = x.shape.count
        let axes = Set((ctx.ints("axes") ?? Array(0..<r)).map { ctx.axis($0, rank: r) })
        let keptShape = (0..<r).map { axes.contains($0) ? 1 : x.shape[$0] }
        let keptStrides = strides(keptShape)
        var sums = [Double](repeating: 0, count: keptShape.reduce(1, *))
        var k = 0
        forEachIndex(x.shape) { c in
            var o = 0
            for d in 0..<r where !axes.contains(d) { o += c[d] * keptStrides[d] }
            let v = x.value(k)
            sums[o] += squares ? v * v : v
            k += 1
        }
        let n = Double(axes.reduce(1) { $0 * x.shape[$1] })
        return [HostTensor(dtype: x.dtype, shape: ctx.outShape(), f: sums.map { finish($0, n) })]
    }
}

let tensorKernels: [String: RefKernel] = [
    "Flatten": reshapeLike, "Reshape": reshapeLike, "Squeeze": reshapeLike, "Unsqueeze": reshapeLike,
    "Transpose": transpose,
    "Slice": slice,
    "Pad": pad,
    "Concat": concat,
    "Gather": gather,
    "ReduceMean": reduction(squares: false) { sum, n in sum / n },
    "ReduceL2": reduction(squares: true) { sum, _ in sum.squareRoot() },
    "Shape": { ctx in
        let x = try ctx.input(0)
        let r = x.shape.count
        func clampAxis(_ a: Int) -> Int { min(max(a < 0 ? a + r : a, 0), r) }
        let start = clampAxis(ctx.int("start")), end = ctx.has("end") ? clampAxis(ctx.int("end")) : r
        let dims = start < end ? Array(x.shape[start..<end]) : []
        return [HostTensor(dtype: .i64, shape: [dims.count], i: dims.map(Int64.init))]
    },
    "Constant": { ctx in
        switch (ctx.attribute("value"), ctx.attribute("value_float"), ctx.attribute("value_floats"), ctx.attribute("value_int"), ctx.attribute("value_ints")) {
        case (.tensor(let t)?, _, _, _, _): return [HostTensor(t)]
        case (_, .float(let v)?, _, _, _): return [HostTensor(dtype: .f32, shape: [], f: [Double(v)])]
        case (_, _, .floats(let v)?, _, _): return [HostTensor(dtype: .f32, shape: [v.count], f: v.map(Double.init))]
        case (_, _, _, .int(let v)?, _): return [HostTensor(dtype: .i64, shape: [], i: [Int64(v)])]
        case (_, _, _, _, .ints(let v)?): return [HostTensor(dtype: .i64, shape: [v.count], i: v.map(Int64.init))]
        default: throw ctx.fail("no supported value attribute")
        }
    },
    "ConstantOfShape": { ctx in
        let shape = ctx.outShape()
        var fill = HostTensor(dtype: .f32, shape: [1], f: [0])
        if case .tensor(let t)? = ctx.attribute("value") { fill = HostTensor(t) }
        let n = shape.reduce(1, *)
        return [fill.gather(Array(repeating: 0, count: n), shape: shape)]
    },
]

let referenceKernels: [String: RefKernel] = elementwiseKernels.merging(nnKernels) { a, _ in a }.merging(tensorKernels) { a, _ in a }
    .merging(trainKernels) { a, _ in a }
