import CKernels
import Foundation
import Graph


/// Turns a graph with static shapes (after the passes) into a `Program`: one step per node
/// (views such as Reshape cost nothing), weights packed into one buffer, and every value
/// placed in one arena by liveness, reusing memory and writing elementwise results in place.
public enum Lowering {
    struct Storage {
        var count: Int
        var first: Int
        var last: Int
    }

    /// Images whose patches the weight gradient takes at once: enough for ~512 positions.
    public static func weightGradGroup(batch: Int, p: Int) -> Int {
        max(1, min(batch, 8, 512 / max(p, 1)))
    }

    /// Multiply-adds × 2 of the training kernels the graph statistics do not know.
    static func flops(of kernel: Program.Kernel, batch: Int) -> Int? {
        switch kernel {
        case .convGradData(let c), .convGradWeight(let c):
            return 2 * batch * c.outChannels * c.channels * c.kernelH * c.kernelW * c.outHeight * c.outWidth
        default: return nil
        }
    }

    /// Nodes whose output shares its (first) input's storage: reshapes, and the training
    /// step's ReshapeLike (the gradient of a reshape).
    static func isView(_ n: Node) -> Bool {
        if case .view? = OpRegistry.definition(of: n)?.lowering { return true }
        return false
    }

    public static func lower(_ g: Graph, batch: Int, options: CompileOptions = .environment) throws -> Program {
        var parameters: [Program.ParameterSlot] = []
        var parameterBytes = 0
        var paramTensor: [String: Program.Tensor] = [:]
        var constants: [String: TensorData] = [:]
        for p in g.parameters {
            guard let t = p.initializer.tensor else { throw CompilerError.lowering("parameter '\(p.name)' has no values") }
            if t.dtype == .f32 {
                let offset = (parameterBytes + ArenaPlanner.alignment - 1) / ArenaPlanner.alignment * ArenaPlanner.alignment
                parameters.append(Program.ParameterSlot(name: p.name, byteOffset: offset, data: t))
                parameterBytes = offset + t.count * DType.f32.byteSize
                paramTensor[p.name] = Program.Tensor(byteOffset: offset, shape: t.shape, inParameters: true, storage: .f32)
            } else {
                constants[p.name] = t
            }
        }

        var storages: [Storage] = []
        var storageOf: [String: Int] = [:]
        var shapeOf: [String: [Int]] = [:]
        func newStorage(_ name: String, _ shape: [Int], at step: Int) {
            storageOf[name] = storages.count
            shapeOf[name] = shape
            storages.append(Storage(count: shape.reduce(1, *), first: step, last: step))
        }
        func use(_ name: String, at step: Int) {
            if let s = storageOf[name] { storages[s].last = max(storages[s].last, step) }
        }
        // Integer and bool values live in f32 storage (see Program.Tensor.dtype).
        let storable: Set<DType> = [.f32, .i64, .i32, .bool]
        var dtypeOf: [String: DType] = [:]
        for v in g.inputs {
            guard storable.contains(v.type.dtype), let shape = v.type.shape.staticSizes else {
                throw CompilerError.lowering("graph input '\(v.name)' is \(v.type); the compiled path takes static f32, i64, i32 or bool inputs")
            }
            dtypeOf[v.name] = v.type.dtype
            newStorage(v.name, shape, at: -1)
        }

        struct Pending {
            var name: String
            var op: String
            var kernel: Program.Kernel
            var inputs: [String]
            var outputs: [String]
            var flops: Int
        }
        var pending: [Pending] = []
        var viewOf: [String: String] = [:]  // view value → the value whose storage it shares
        let nodeFlops = Dictionary(g.stats(batch: batch).nodes.map { ($0.name, $0.flops) }, uniquingKeysWith: { a, _ in a })

        // Last node to read each storage, following views to the value that owns the storage.
        var root: [String: String] = [:]
        func rootOf(_ v: String) -> String { root[v].map(rootOf) ?? v }
        var lastReader: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() {
            for input in n.inputs where !input.isEmpty { lastReader[rootOf(input)] = i }
            if isView(n), let src = n.inputs.first, paramTensor[src] == nil { root[n.outputs[0].name] = src }
        }
        for o in g.outputs { lastReader[rootOf(o.name)] = Int.max }

        for (nodeIndex, n) in g.nodes.enumerated() {
            let outShapes = try n.outputs.map { o -> [Int] in
                guard let s = o.type.shape.staticSizes else { throw CompilerError.lowering("node '\(n.name)': shape \(o.type) is not static") }
                return s
            }
            let step = pending.count
            // Views share the storage of their input.
            if isView(n), n.outputs[0].type.dtype == .f32, let src = n.inputs.first {
                if let s = storageOf[src] {
                    storageOf[n.outputs[0].name] = s
                    shapeOf[n.outputs[0].name] = outShapes[0]
                    viewOf[n.outputs[0].name] = src
                    continue
                }
                if let p = paramTensor[src] {
                    paramTensor[n.outputs[0].name] = Program.Tensor(byteOffset: p.byteOffset, shape: outShapes[0], inParameters: true, storage: .f32)
                    continue
                }
            }
            for o in n.outputs where !o.name.isEmpty {
                guard storable.contains(o.type.dtype) else {
                    throw CompilerError.lowering("node '\(n.name)' (\(n.qualifiedOp)) produces \(o.type); the compiled path handles f32, i64, i32 and bool values")
                }
                dtypeOf[o.name] = o.type.dtype
            }
            // Nodes producing integer or bool values run their reference kernel: the fast
            // kernels are f32 ones.
            let kernel = n.outputs.contains(where: { !$0.name.isEmpty && $0.type.dtype != .f32 })
                ? Program.Kernel.reference(n)
                : try selectKernel(n, g: g, batch: batch, shapeOf: { shapeOf[$0] ?? paramTensor[$0]?.shape ?? constants[$0]?.shape ?? [] },
                                   constants: constants, params: paramTensor, outShapes: outShapes, options: options)
            let liveOutputs = n.outputs.filter { !$0.name.isEmpty }.map(\.name)
            for i in n.inputs where !i.isEmpty { use(i, at: step) }
            // In place: an elementwise result may take its first input's storage when that
            // storage dies here.
            var inPlace = false
            switch kernel {
            case .activation, .binary, .scaleShift, .elementwiseChain:
                if let src = n.inputs.first, let s = storageOf[src], storages[s].first >= 0,
                   lastReader[rootOf(src)] == nodeIndex, n.inputs.dropFirst().allSatisfy({ rootOf($0) != rootOf(src) }) {
                    storageOf[liveOutputs[0]] = s
                    shapeOf[liveOutputs[0]] = outShapes[0]
                    inPlace = true
                }
            default: break
            }
            if !inPlace {
                for (k, o) in n.outputs.enumerated() where !o.name.isEmpty { newStorage(o.name, outShapes[k], at: step) }
            }
            pending.append(Pending(name: n.name, op: n.qualifiedOp, kernel: kernel, inputs: n.inputs, outputs: liveOutputs,
                                   flops: flops(of: kernel, batch: batch) ?? nodeFlops[n.name] ?? 0))
        }
        for o in g.outputs {
            guard let s = storageOf[o.name] else {
                throw CompilerError.lowering("graph output '\(o.name)' is a parameter or constant; nothing to compute")
            }
            storages[s].last = pending.count
        }
        // Inputs stay intact through the whole program, so executing again on the same input
        // gives the same result (their storage is never reused for later values).
        for v in g.inputs { if let s = storageOf[v.name] { storages[s].last = pending.count } }
        // Views keep their source alive as long as they are used (their uses were recorded on
        // the shared storage already).

        // Every value is held as f32 (integer and bool values too: see Program.Tensor).
        let requests = storages.map { ArenaPlanner.Request(bytes: $0.count * DType.f32.byteSize, first: $0.first, last: $0.last) }
        let (offsets, arena) = ArenaPlanner.place(requests)

        func tensor(_ name: String) -> Program.Tensor? {
            if let p = paramTensor[name] { return p }
            guard let s = storageOf[name] else { return nil }
            return Program.Tensor(byteOffset: offsets[s], shape: shapeOf[name] ?? [], inParameters: false, storage: .f32, dtype: dtypeOf[name] ?? .f32)
        }
        func operand(_ name: String) -> Program.Operand {
            if name.isEmpty { return .none }
            if let t = tensor(name) { return .tensor(t) }
            if let c = constants[name] { return .constant(c) }
            return .none
        }
        let steps = pending.map { p in
            Program.Step(name: p.name, op: p.op, kernel: p.kernel, inputs: p.inputs.map(operand),
                         outputs: p.outputs.compactMap(tensor), flops: p.flops)
        }
        let scratch = steps.map { s -> Int in
            switch s.kernel {
            case .conv(let c), .convGradData(let c), .convGradWeight(let c): return c.scratch
            default: return 0
            }
        }.max() ?? 0
        let live = zip(requests, offsets).map { Program.Storage(byteOffset: $1, bytes: $0.bytes, firstStep: $0.first, lastStep: $0.last) }
        return Program(batch: batch, steps: steps, arenaBytes: arena, storages: live, parameters: parameters, parameterBytes: parameterBytes,
                       inputs: g.inputs.map { Program.Binding(name: $0.name, tensor: tensor($0.name)!) },
                       outputs: g.outputs.map { Program.Binding(name: $0.name, tensor: tensor($0.name)!) },
                       scratchCount: scratch)
    }

    /// A geometry for the size queries below (stride and dilation 1, the only ones they serve).
    static func geometry(c: Int, m: Int, h: Int, w: Int, kh: Int, kw: Int, pads: [Int], out: [Int]) -> kiln_conv_geometry {
        kiln_conv_geometry(C: Int32(c), H: Int32(h), W: Int32(w), M: Int32(m), OH: Int32(out[0]), OW: Int32(out[1]),
                           KH: Int32(kh), KW: Int32(kw), SH: 1, SW: 1, DH: 1, DW: 1,
                           PH: Int32(pads[0]), PW: Int32(pads[1]), PHE: Int32(pads[2]), PWE: Int32(pads[3]))
    }

    /// Floats per channel of the padded input of the direct kernel.
    static func directPlane(h: Int, w: Int, kh: Int, kw: Int, pads: [Int]) -> Int {
        Int(kiln_conv_shift_plane(geometry(c: 1, m: 1, h: h, w: w, kh: kh, kw: kw, pads: pads, out: [h, w])))
    }

    /// Floats of per-thread scratch for the Winograd convolution.
    static func winogradScratch(c: Int, m: Int, h: Int, w: Int, pads: [Int], out: [Int]) -> Int {
        Int(kiln_winograd_scratch(geometry(c: c, m: m, h: h, w: w, kh: 3, kw: 3, pads: pads, out: out)))
    }

    /// Floats of per-thread scratch for the Winograd weight gradient's transforms.
    static func winogradWeightGradScratch(c: Int, m: Int, h: Int, w: Int, pads: [Int], out: [Int]) -> Int {
        Int(kiln_winograd_wgrad_scratch(geometry(c: c, m: m, h: h, w: w, kh: 3, kw: 3, pads: pads, out: out)))
    }

    /// kiln_activation codes, and the codes of kiln_binary / kiln_elementwise_chain.
    static let activationCodes: [String: Int32] = ["Relu": 1, "LeakyRelu": 2, "Clip": 3, "Sigmoid": 4, "HardSwish": 5]
    static let arithmeticCodes: [String: Int32] = ["Add": 0, "Sub": 1, "Mul": 2, "Div": 3]

    /// How `b` broadcasts into `out` for the binary kernels: (0, 0) same shape, (1, 1) a
    /// scalar, (C, inner) one axis of size C with `inner` elements after it; nil otherwise.
    static func broadcastPattern(_ b: [Int], into out: [Int]) -> (period: Int, inner: Int)? {
        if b == out { return (0, 0) }
        if b.reduce(1, *) == 1 { return (1, 1) }
        guard b.count <= out.count else { return nil }
        let padded = Array(repeating: 1, count: out.count - b.count) + b
        let nonOne = padded.indices.filter { padded[$0] != 1 }
        guard nonOne.count == 1, padded[nonOne[0]] == out[nonOne[0]] else { return nil }
        return (padded[nonOne[0]], out[(nonOne[0] + 1)...].reduce(1, *))
    }

    static func activation(_ n: Node) -> Program.Activation {
        func f(_ k: String, _ d: Float) -> Float { if case .float(let v)? = n.attributes[k] { return v }; return d }
        var name = n.op
        if case .string(let a)? = n.attributes["activation"] { name = a }
        guard let kind = activationCodes[name] else { return .none }
        return .init(kind: kind, alpha: name == "LeakyRelu" ? f("alpha", 0.01) : 0,
                     low: name == "Clip" ? f("min", -.greatestFiniteMagnitude) : 0, high: name == "Clip" ? f("max", .greatestFiniteMagnitude) : 0)
    }

    static func selectKernel(_ n: Node, g: Graph, batch: Int, shapeOf: (String) -> [Int], constants: [String: TensorData],
                             params: [String: Program.Tensor], outShapes: [[Int]], options: CompileOptions) throws -> Program.Kernel {
        func ints(_ k: String) -> [Int]? { if case .ints(let v)? = n.attributes[k] { return v }; return nil }
        func int(_ k: String, _ d: Int) -> Int { if case .int(let v)? = n.attributes[k] { return v }; return d }
        func float(_ k: String, _ d: Float) -> Float { if case .float(let v)? = n.attributes[k] { return v }; return d }
        func string(_ k: String) -> String { if case .string(let v)? = n.attributes[k] { return v }; return "" }
        let op = n.domain.isEmpty ? n.op : "\(n.domain).\(n.op)"
        let out = outShapes.first ?? []
        /// The forward convolution's descriptor, from x's and w's shapes (one group, 2-D).
        func convGeometry(x: [Int], w: [Int], scratch: (Int, Int) -> Int) throws -> Program.Conv? {
            guard x.count == 4, w.count == 4, int("group", 1) == 1 else { return nil }
            let geometry = try WindowGeometry.resolve(input: [x[2], x[3]], kernel: [w[2], w[3]], strides: ints("strides"),
                                                      dilations: ints("dilations"), pads: ints("pads"),
                                                      autoPad: string("auto_pad").isEmpty ? "NOTSET" : string("auto_pad"), ceilMode: false)
            let k = x[1] * w[2] * w[3], p = geometry.output[0] * geometry.output[1]
            return Program.Conv(
                algorithm: .im2col, channels: x[1], height: x[2], width: x[3], outChannels: w[0],
                outHeight: geometry.output[0], outWidth: geometry.output[1], kernelH: w[2], kernelW: w[3],
                strideH: geometry.strides[0], strideW: geometry.strides[1], padTop: geometry.padsBegin[0], padLeft: geometry.padsBegin[1],
                padBottom: geometry.padsEnd[0], padRight: geometry.padsEnd[1],
                dilationH: geometry.dilations[0], dilationW: geometry.dilations[1], group: 1, activation: .none, scratch: scratch(k, p))
        }
        guard let definition = OpRegistry.definition(of: n) else {
            throw CompilerError.lowering("node '\(n.name)': unknown op \(n.qualifiedOp)")
        }
        // The op's definition names its kernel family; the descriptor comes from the shapes
        // (and the reference kernel runs where they do not fit the fast kernel).
        guard case .kernel(let fast) = definition.lowering else { return .reference(n) }
        switch fast {
        case .convGradData:
            // Per thread: the columns Wᵀ·dy of one image.
            guard var c = try convGeometry(x: shapeOf(n.inputs[2]), w: shapeOf(n.inputs[1]), scratch: { k, p in k * p }) else { return .reference(n) }
            // A 3×3 stride-1 convolution's data gradient is itself a 3×3 stride-1 convolution
            // (dy by the rotated, channel-swapped kernel, pads 2 − p): Winograd, described as
            // that convolution.
            let pads = [c.padTop, c.padLeft, c.padBottom, c.padRight]
            if c.kernelH == 3, c.kernelW == 3, c.strideH == 1, c.strideW == 1, c.dilationH == 1, c.dilationW == 1,
               pads.allSatisfy({ $0 <= 2 }), c.channels % 8 == 0, c.outChannels >= 16,
               options.winograd != false {
                let t = pads.map { 2 - $0 }
                c = Program.Conv(algorithm: .winograd, channels: c.outChannels, height: c.outHeight, width: c.outWidth,
                                 outChannels: c.channels, outHeight: c.height, outWidth: c.width, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1,
                                 padTop: t[0], padLeft: t[1], padBottom: t[2], padRight: t[3], dilationH: 1, dilationW: 1, group: 1,
                                 activation: .none,
                                 scratch: winogradScratch(c: c.outChannels, m: c.channels, h: c.outHeight, w: c.outWidth, pads: t, out: [c.height, c.width]))
            }
            return .convGradData(c)
        case .convGradWeight:
            // Per thread: one image's columns and a dW accumulator.
            let w = shapeOf(n.inputs[2])
            // Per thread: a dW accumulator, and the patches and dy of a group of images side by
            // side (so each dot product runs over at least ~512 positions).
            guard var c = try convGeometry(x: shapeOf(n.inputs[0]), w: w, scratch: { k, p in
                w[0] * k + weightGradGroup(batch: batch, p: p) * (k * p + w[0] * p)
            }) else { return .reference(n) }
            if c.kernelH == 3, c.kernelW == 3, c.strideH == 1, c.strideW == 1, c.dilationH == 1, c.dilationW == 1,
               c.channels % 8 == 0, c.outChannels % 8 == 0, options.winograd != false {
                // 3×3 stride 1: Winograd F(2×2, 3×3) in the weights too (16 products per tile
                // summed over tiles instead of 36 per output pair of positions), one
                // accumulator dU per thread and then dW.
                let pads = [c.padTop, c.padLeft, c.padBottom, c.padRight]
                c.algorithm = .winograd
                c.scratch = w[0] * c.channels * 9 + 16 * c.channels * w[0]
                    + winogradWeightGradScratch(c: c.channels, m: w[0], h: c.height, w: c.width, pads: pads, out: [c.outHeight, c.outWidth])
            } else if c.strideH == 1, c.strideW == 1, c.dilationH == 1, c.dilationW == 1 {
                // Stride 1: no patches at all — the image zero-padded once and dy on the same
                // grid, every tap a shifted row (algorithm "direct_shift", as in the forward).
                let pads = [c.padTop, c.padLeft, c.padBottom, c.padRight]
                let plane = directPlane(h: c.height, w: c.width, kh: c.kernelH, kw: c.kernelW, pads: pads)
                let q = c.outHeight * (c.width + c.padLeft + c.padRight)
                c.algorithm = .direct
                c.scratch = w[0] * c.channels * c.kernelH * c.kernelW + weightGradGroup(batch: batch, p: q) * (c.channels * plane + w[0] * q)
            }
            return .convGradWeight(c)
        case .convGradBias:
            let d = shapeOf(n.inputs[0])
            return .channelSum(channels: d[1], inner: d[2...].reduce(1, *))
        case .batchNormTraining:
            let x = shapeOf(n.inputs[0])
            return .batchNormTraining(channels: x[1], inner: x[2...].reduce(1, *), epsilon: float("epsilon", 1e-5), momentum: float("momentum", 0.9),
                                      relu: string("activation") == "Relu")
        case .batchNormGrad:
            let x = shapeOf(n.inputs[1])
            return .batchNormGrad(channels: x[1], inner: x[2...].reduce(1, *))
        case .reluGrad:
            return .reluGrad
        case .globalAveragePoolGrad:
            let x = shapeOf(n.inputs[1])
            return .globalAveragePoolGrad(planes: x[0] * x[1], size: x[2...].reduce(1, *))
        case .scatter:
            return .scatter(n)
        case .sgd:
            return .sgd(momentum: float("momentum", 0.9), weightDecay: float("weight_decay", 0), nesterov: int("nesterov", 0) != 0)
        case .conv:
            let x = shapeOf(n.inputs[0]), w = shapeOf(n.inputs[1])
            guard x.count == 4 else { return .reference(n) }
            let geometry = try WindowGeometry.resolve(input: [x[2], x[3]], kernel: [w[2], w[3]], strides: ints("strides"),
                                                      dilations: ints("dilations"), pads: ints("pads"),
                                                      autoPad: string("auto_pad").isEmpty ? "NOTSET" : string("auto_pad"), ceilMode: false)
            let group = int("group", 1)
            let algorithm = ConvAlgorithm(rawValue: string("algorithm")) ?? chooseConvAlgorithm(n, g, winograd: options.winograd)
            let k = x[1] / group * w[2] * w[3]
            let p = geometry.output[0] * geometry.output[1]
            return .conv(Program.Conv(
                algorithm: algorithm, channels: x[1], height: x[2], width: x[3], outChannels: w[0],
                outHeight: geometry.output[0], outWidth: geometry.output[1], kernelH: w[2], kernelW: w[3],
                strideH: geometry.strides[0], strideW: geometry.strides[1], padTop: geometry.padsBegin[0], padLeft: geometry.padsBegin[1],
                padBottom: geometry.padsEnd[0], padRight: geometry.padsEnd[1],
                dilationH: geometry.dilations[0], dilationW: geometry.dilations[1], group: group,
                activation: op == "Conv" ? .none : activation(n),
                scratch: algorithm == .im2col ? k * p
                    : algorithm == .direct ? x[1] * directPlane(h: x[2], w: x[3], kh: w[2], kw: w[3], pads: geometry.padsBegin + geometry.padsEnd)
                    : algorithm == .winograd ? winogradScratch(c: x[1], m: w[0], h: x[2], w: x[3], pads: geometry.padsBegin + geometry.padsEnd, out: geometry.output)
                    : 0))
        case .gemm:
            let a = shapeOf(n.inputs[0]), b = shapeOf(n.inputs[1])
            let transA = int("transA", 0) != 0, transB = int("transB", 0) != 0
            let m = transA ? a[1] : a[0], k = transA ? a[0] : a[1], nn = transB ? b[0] : b[1]
            var mode = 0
            if n.inputs.count > 2, !n.inputs[2].isEmpty {
                let c = shapeOf(n.inputs[2])
                if c.reduce(1, *) == 1 { mode = 4 }
                else if c == [nn] || c == [1, nn] { mode = 1 }
                else if c == [m, 1] { mode = 2 }
                else if c == [m, nn] { mode = 3 }
                else { return .reference(n) }
            }
            return .gemm(Program.Gemm(m: m, n: nn, k: k, transA: transA, transB: transB,
                                      alpha: float(op == "Gemm" ? "alpha" : "alpha_gemm", 1), beta: float("beta", 1),
                                      biasMode: mode, activation: op == "Gemm" ? .none : activation(n)))
        case .matMul:
            let a = shapeOf(n.inputs[0]), b = shapeOf(n.inputs[1])
            guard a.count == 2, b.count == 2 else { return .reference(n) }
            return .gemm(Program.Gemm(m: a[0], n: b[1], k: a[1], transA: false, transB: false, alpha: 1, beta: 0, biasMode: 0, activation: .none))
        case .pool:
            let x = shapeOf(n.inputs[0])
            guard x.count == 4, n.outputs.count == 1, let kernel = ints("kernel_shape") else { return .reference(n) }
            let geometry = try WindowGeometry.resolve(input: [x[2], x[3]], kernel: kernel, strides: ints("strides"), dilations: ints("dilations"),
                                                      pads: ints("pads"), autoPad: string("auto_pad").isEmpty ? "NOTSET" : string("auto_pad"),
                                                      ceilMode: int("ceil_mode", 0) != 0)
            return .pool(Program.Pool(isMax: n.op == "MaxPool", height: x[2], width: x[3], outHeight: geometry.output[0], outWidth: geometry.output[1],
                                      kernelH: kernel[0], kernelW: kernel[1], strideH: geometry.strides[0], strideW: geometry.strides[1],
                                      padTop: geometry.padsBegin[0], padLeft: geometry.padsBegin[1], padBottom: geometry.padsEnd[0], padRight: geometry.padsEnd[1],
                                      dilationH: geometry.dilations[0], dilationW: geometry.dilations[1], includePad: int("count_include_pad", 0) != 0))
        case .globalAveragePool:
            let x = shapeOf(n.inputs[0])
            return .globalAveragePool(planes: x[0] * x[1], size: x[2...].reduce(1, *))
        case .activation:
            return .activation(activation(n))
        case .clip:
            // ONNX's defaults are the type's lowest and largest finite values: Clip(inf) = FLT_MAX.
            var bounds: [Float] = [-.greatestFiniteMagnitude, .greatestFiniteMagnitude]
            for k in 1..<min(3, n.inputs.count) where !n.inputs[k].isEmpty {
                guard let p = g.parameter(named: n.inputs[k])?.initializer.tensor, p.count == 1 else { return .reference(n) }
                bounds[k - 1] = Float(p.double(at: 0))
            }
            return .activation(.init(kind: 3, alpha: 0, low: bounds[0], high: bounds[1]))
        case .binary:
            guard shapeOf(n.inputs[0]) == out, let (period, inner) = broadcastPattern(shapeOf(n.inputs[1]), into: out) else {
                return .reference(n)
            }
            return .binary(op: arithmeticCodes[n.op]!, period: period, inner: inner)
        case .sum:
            // Gradient accumulation in the training step.
            guard n.inputs.count == 2 && shapeOf(n.inputs[0]) == out && shapeOf(n.inputs[1]) == out else { return .reference(n) }
            return .binary(op: 0, period: 0, inner: 0)
        case .batchNormInference:
            guard n.outputs.count == 1, int("training_mode", 0) == 0, n.inputs[1...4].allSatisfy({ params[$0] != nil }) else { return .reference(n) }
            let x = shapeOf(n.inputs[0])
            var epsilon = 1e-5  // ONNX's default (a Double, as the folded constants are computed)
            if case .float(let e)? = n.attributes["epsilon"] { epsilon = Double(e) }
            return .scaleShift(channels: x[1], inner: x[2...].reduce(1, *), epsilon: epsilon)
        case .dataMovement:
            switch n.op {
            case "Pad":
                // The fill value must be known when the index map is built.
                let fillKnown = n.inputs.count < 3 || n.inputs[2].isEmpty || params[n.inputs[2]] != nil
                return fillKnown ? .dataMovement(n) : .reference(n)
            case "Gather":
                return constants[n.inputs[1]] != nil || params[n.inputs[1]] != nil ? .dataMovement(n) : .reference(n)
            default:
                return .dataMovement(n)  // Slice, Transpose
            }
        case .concat:
            return .concat(axis: int("axis", 0) < 0 ? int("axis", 0) + out.count : int("axis", 0))
        case .softmax:
            let axis = int("axis", -1) < 0 ? int("axis", -1) + out.count : int("axis", -1)
            guard axis == out.count - 1 else { return .reference(n) }
            return .softmax(log: n.op == "LogSoftmax", rows: out.dropLast().reduce(1, *), length: out.last ?? 1)
        case .elementwiseChain:
            guard case .strings(let chain)? = n.attributes["chain"], let operands = ints("operand"), let swaps = ints("swap"),
                  case .floats(let alphas)? = n.attributes["alphas"], case .floats(let mins)? = n.attributes["mins"],
                  case .floats(let maxs)? = n.attributes["maxs"] else { return .reference(n) }
            var ops: [Program.ElementwiseOp] = []
            for (k, op) in chain.enumerated() {
                let act = Program.Activation(kind: activationCodes[op] ?? 0, alpha: alphas[k], low: mins[k], high: maxs[k])
                if operands[k] < 0 {
                    ops.append(.init(kind: 10 + act.kind, swap: false, operand: -1, period: 0, inner: 0, activation: act))
                    continue
                }
                guard let (period, inner) = broadcastPattern(shapeOf(n.inputs[operands[k]]), into: out) else { return .reference(n) }
                ops.append(.init(kind: arithmeticCodes[op] ?? 0, swap: swaps[k] != 0, operand: operands[k], period: period, inner: inner,
                                 activation: .none))
            }
            return .elementwiseChain(ops)
        }
    }
}
