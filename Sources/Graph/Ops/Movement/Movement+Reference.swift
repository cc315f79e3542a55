import Foundation

// Reference kernels (Double precision, written for clarity) of the movement family (see Movement.swift).

/// Ops that only reinterpret the shape: the output type (from inference) says the shape.
let reshapeLike: RefKernel = { ctx in [try ctx.input(0).reshaped(ctx.outShape())] }

func transpose(_ ctx: RefContext) throws -> [HostTensor] {
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

func slice(_ ctx: RefContext) throws -> [HostTensor] {
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
func pad(_ ctx: RefContext) throws -> [HostTensor] {
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

func concat(_ ctx: RefContext) throws -> [HostTensor] {
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
func gather(_ ctx: RefContext) throws -> [HostTensor] {
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

/// Runs a data-movement kernel on element indices of `x` (as the compiled path does) and
/// returns, per output element, the input index it copies (or a negative fill).
func indexMap(_ ctx: RefContext, kernel name: String, inputs: [HostTensor?]) throws -> [Int] {
    guard let kernel = OpRegistry.definition(OpKey(name))?.reference else { throw ctx.fail("no \(name) kernel") }
    var ins = inputs
    let x = try ctx.input(1)
    ins[0] = HostTensor(dtype: .f64, shape: x.shape, f: (0..<x.count).map(Double.init))
    var node = ctx.node
    node.domain = ""
    node.op = name
    let out = try kernel(RefContext(node: node, inputs: ins, outputTypes: [TensorType(.f64, ctx.inputs[0]!.shape.map { Dim($0) })]))
    return out[0].f.map { Int($0) }
}

func sliceGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let map = try indexMap(ctx, kernel: "Slice", inputs: [nil] + Array(ctx.inputs[2...]))
    var dx = HostTensor.zeros(x.dtype, x.shape)
    for (k, i) in map.enumerated() { dx.f[i] += dy.f[k] }
    return [dx]
}

func padGrad(_ ctx: RefContext) throws -> [HostTensor] {
    let dy = try ctx.input(0), x = try ctx.input(1)
    let pads = try ctx.input(2)
    let map = try indexMap(ctx, kernel: "Pad", inputs: [nil, pads, HostTensor(dtype: .f64, shape: [], f: [-1])])
    var dx = HostTensor.zeros(x.dtype, x.shape)
    for (k, i) in map.enumerated() where i >= 0 { dx.f[i] += dy.f[k] }
    return [dx]
}

let constantReference: RefKernel = { ctx in
    switch (ctx.attribute("value"), ctx.attribute("value_float"), ctx.attribute("value_floats"), ctx.attribute("value_int"), ctx.attribute("value_ints")) {
    case (.tensor(let t)?, _, _, _, _): return [HostTensor(t)]
    case (_, .float(let v)?, _, _, _): return [HostTensor(dtype: .f32, shape: [], f: [Double(v)])]
    case (_, _, .floats(let v)?, _, _): return [HostTensor(dtype: .f32, shape: [v.count], f: v.map(Double.init))]
    case (_, _, _, .int(let v)?, _): return [HostTensor(dtype: .i64, shape: [], i: [Int64(v)])]
    case (_, _, _, _, .ints(let v)?): return [HostTensor(dtype: .i64, shape: [v.count], i: v.map(Int64.init))]
    default: throw ctx.fail("no supported value attribute")
    }
}

let constantOfShapeReference: RefKernel = { ctx in
    let shape = ctx.outShape()
    var fill = HostTensor(dtype: .f32, shape: [1], f: [0])
    if case .tensor(let t)? = ctx.attribute("value") { fill = HostTensor(t) }
    let n = shape.reduce(1, *)
    return [fill.gather(Array(repeating: 0, count: n), shape: shape)]
}

let shapeReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let r = x.shape.count
    func clampAxis(_ a: Int) -> Int { min(max(a < 0 ? a + r : a, 0), r) }
    let start = clampAxis(ctx.int("start")), end = ctx.has("end") ? clampAxis(ctx.int("end")) : r
    let dims = start < end ? Array(x.shape[start..<end]) : []
    return [HostTensor(dtype: .i64, shape: [dims.count], i: dims.map(Int64.init))]
}

let castReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let to = ctx.outType()
    if to.isFloatingPoint {
        return [HostTensor(dtype: to, shape: x.shape, f: x.isFloat ? x.f : x.i.map(Double.init))]
    }
    if to == .bool {
        return [HostTensor(dtype: to, shape: x.shape, i: x.isFloat ? x.f.map { $0 != 0 ? 1 : 0 } : x.i.map { $0 != 0 ? 1 : 0 })]
    }
    let ints = x.isFloat ? x.f.map(TensorData.clampedInt64) : x.i
    return [HostTensor(dtype: to, shape: x.shape, i: ints.map { wrap($0, to) })]
}

let reshapeLikeReference: RefKernel = { ctx in [try ctx.input(0).reshaped(try ctx.input(1).shape)] }

let expandReference: RefKernel = { ctx in
    let x = try ctx.input(0), shape = ctx.outShape()
    return [x.gather(broadcastIndices(from: x.shape, to: shape), shape: shape)]
}

let tileReference: RefKernel = { ctx in
    let x = try ctx.input(0), shape = ctx.outShape()
    let inStrides = strides(x.shape)
    var indices: [Int] = []
    indices.reserveCapacity(shape.reduce(1, *))
    forEachIndex(shape) { c in
        var k = 0
        for d in c.indices { k += (c[d] % x.shape[d]) * inStrides[d] }
        indices.append(k)
    }
    return [x.gather(indices, shape: shape)]
}

let rangeReference: RefKernel = { ctx in
    let start = try ctx.input(0), delta = try ctx.input(2), n = ctx.outShape()[0]
    if start.isFloat { return [HostTensor(dtype: start.dtype, shape: [n], f: (0..<n).map { start.f[0] + Double($0) * delta.f[0] })] }
    return [HostTensor(dtype: start.dtype, shape: [n], i: (0..<n).map { start.i[0] + Int64($0) * delta.i[0] })]
}

let splitReference: RefKernel = { ctx in
    let x = try ctx.input(0)
    let axis = ctx.axis(ctx.int("axis"), rank: x.shape.count)
    let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
    var start = 0
    return ctx.outputTypes.map { t in
        let shape = t.shape.map { $0.value ?? 0 }, size = shape[axis]
        defer { start += size }
        var indices: [Int] = []
        for o in 0..<outer { for a in start..<(start + size) { for j in 0..<inner { indices.append((o * x.shape[axis] + a) * inner + j) } } }
        return x.gather(indices, shape: shape)
    }
}
