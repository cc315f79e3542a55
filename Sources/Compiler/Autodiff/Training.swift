import Graph

/// The loss a training graph ends in (docs/TRAINING.md).
public enum TrainingLoss: Sendable, Equatable {
    /// Softmax cross-entropy, weighted mean over the batch.
    case crossEntropy
    /// Focal loss with exponent γ (Lin et al. 2017), as the LDAM reference code computes it.
    case focal(gamma: Float)
    /// LDAM (Cao et al. 2019) on a cosine head: margins from the class counts, the largest
    /// `maxM`, logits scaled by `scale`.
    case ldam(classCounts: [Int], maxM: Float, scale: Float)
}

/// How `Autodiff.trainingGraph` builds one SGD step.
public struct TrainingOptions: Sendable, Equatable {
    public var loss: TrainingLoss
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool
    /// Running statistics: running = bnMomentum·running + (1 − bnMomentum)·batch (ONNX's
    /// convention; PyTorch's momentum 0.1 is 0.9 here).
    public var bnMomentum: Float

    public init(loss: TrainingLoss = .crossEntropy, momentum: Float = 0.9, weightDecay: Float = 2e-4, nesterov: Bool = false,
                bnMomentum: Float = 0.9) {
        self.loss = loss
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.bnMomentum = bnMomentum
    }
}

/// Reverse-mode differentiation on the IR: turns an inference graph (images → logits) into
/// one training step — forward in training mode, loss, backward from per-op rules, and an
/// SGD update per trained parameter — as a plain graph that the passes and the runtime
/// treat like any other.
public enum Autodiff {
    /// Inputs the training graph adds: labels (i64 [N]), class weights (f32 [C]) and the
    /// learning rate (f32 scalar), so the DRW switch and the LR schedule never recompile.
    public static let labels = "labels", classWeights = "class_weights", learningRate = "lr"
    /// The scalar loss output.
    public static let loss = "loss"

    /// The name of the output holding parameter (or velocity, or running statistic) `name`'s
    /// value after the step.
    public static func next(_ name: String) -> String { name + ".next" }
    /// The buffer holding a trained parameter's SGD velocity.
    public static func velocity(_ name: String) -> String { name + ".velocity" }

    /// Ops with a backward rule (the loss ops and SGD are added by the builder itself).
    public static let differentiableOps: Set<String> = [
        "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Add", "Sub", "Mul", "Sum", "MaxPool", "AveragePool",
        "GlobalAveragePool", "Gemm", "MatMul", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Slice", "Pad",
        "Concat", "Dropout", "kiln.NormedLinear",
    ]

    /// The training step of `graph`, whose first output is the logits [N, C].
    ///
    /// Outputs, in order: `loss`, the logits, then per trained parameter `p` the pair
    /// `p.next`, `p.velocity.next`, then per BatchNormalization the next running mean and
    /// variance. For LDAM a Linear (Gemm) head becomes `kiln.NormedLinear` with a fresh
    /// unit-column weight [F, C], as the method prescribes.
    public static func trainingGraph(_ graph: Graph, options: TrainingOptions = TrainingOptions()) throws -> Graph {
        var g = try graph.verified()
        guard let logits = g.outputs.first, logits.type.rank == 2, let classes = logits.type.shape[1].value else {
            throw CompilerError.training("the model's first output must be logits [N, C]")
        }
        if case .ldam = options.loss { g = try cosineHead(g, logits: logits.name) }
        var builder = Builder(graph: g, options: options)
        try builder.forward()
        try builder.lossNode(logits: logits, classes: classes)
        try builder.backward()
        builder.updates()
        return try builder.g.verified()
    }

    /// Replaces a Gemm head producing `logits` with NormedLinear (no bias) and a fresh weight
    /// [F, C] drawn by the `unitColumns` rule; a NormedLinear head is kept as it is.
    public static func cosineHead(_ graph: Graph, logits: String) throws -> Graph {
        var g = graph
        guard let i = g.nodes.firstIndex(where: { $0.outputs.first?.name == logits }) else {
            throw CompilerError.training("the logits '\(logits)' are a graph input, not a head")
        }
        let head = g.nodes[i]
        if head.domain == "kiln" && head.op == "NormedLinear" { return g }
        guard head.domain.isEmpty, head.op == "Gemm", let w = g.parameter(named: head.inputs[1]), w.shape.count == 2 else {
            throw CompilerError.training("LDAM needs a Linear (Gemm) or kiln.NormedLinear head; '\(head.name)' is \(head.qualifiedOp)")
        }
        var transB = 0
        if case .int(let t)? = head.attributes["transB"] { transB = t }
        let (classes, features) = transB != 0 ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
        let name = uniqueName("\(head.name).normed.weight", taken: Set(g.valueTypes.keys))
        g.parameters.append(Parameter(name: name, shape: [features, classes], role: .param, initializer: .unitColumns))
        g.nodes[i] = Node(name: head.name, op: "NormedLinear", domain: "kiln", inputs: [head.inputs[0], name], outputs: head.outputs)
        return eliminateDeadCode(g)
    }

    struct Builder {
        var g: Graph
        let options: TrainingOptions
        var types: [String: TensorType] = [:]
        var taken: Set<String> = []
        /// Gradient contributions per value, summed when it is needed.
        var contributions: [String: [String]] = [:]
        var runningStats: [(String, String)] = []  // (buffer, its next-value output)

        init(graph: Graph, options: TrainingOptions) {
            g = graph
            self.options = options
            types = graph.valueTypes
            taken = Set(types.keys).union(graph.nodes.map(\.name))
        }

        mutating func fresh(_ base: String) -> String {
            let n = uniqueName(base, taken: taken)
            taken.insert(n)
            return n
        }

        mutating func constant(_ base: String, _ data: TensorData) -> String {
            let name = fresh(base)
            g.parameters.append(Parameter(name: name, role: .const, data: data))
            types[name] = TensorType(data.dtype, data.shape.map { Dim($0) })
            return name
        }

        /// Appends a node; its outputs get the given names and types.
        @discardableResult
        mutating func emit(_ op: String, domain: String = "kiln", _ inputs: [String], _ outputs: [(String, TensorType)],
                           attributes: [String: Attribute] = [:], name base: String) -> [String] {
            let node = Node(name: fresh(base), op: op, domain: domain, inputs: inputs,
                            outputs: outputs.map { Value($0.0, $0.1) }, attributes: attributes)
            g.nodes.append(node)
            for (n, t) in outputs { types[n] = t; taken.insert(n) }
            return outputs.map(\.0)
        }

        /// Forward in training mode: BatchNormalization computes batch statistics and the
        /// next running averages.
        mutating func forward() throws {
            for (i, n) in g.nodes.enumerated() where n.domain.isEmpty && n.op == "BatchNormalization" {
                guard n.inputs.count == 5, n.outputs.count == 1 else {
                    throw CompilerError.training("BatchNormalization '\(n.name)' must have 5 inputs and one output to train")
                }
                let c = types[n.inputs[1]]!
                var eps: Float = 1e-5
                if case .float(let e)? = n.attributes["epsilon"] { eps = e }
                let mean = fresh("\(n.name).batch_mean"), invstd = fresh("\(n.name).batch_invstd")
                let nextMean = Autodiff.next(n.inputs[3]), nextVar = Autodiff.next(n.inputs[4])
                taken.formUnion([nextMean, nextVar])
                for (v, t) in [(mean, c), (invstd, c), (nextMean, c), (nextVar, c)] { types[v] = t }
                g.nodes[i] = Node(name: n.name, op: "BatchNormTraining", domain: "kiln", inputs: n.inputs,
                                  outputs: [n.outputs[0], Value(mean, c), Value(invstd, c), Value(nextMean, c), Value(nextVar, c)],
                                  attributes: ["epsilon": .float(eps), "momentum": .float(options.bnMomentum)])
                runningStats += [(n.inputs[3], nextMean), (n.inputs[4], nextVar)]
            }
            for (i, n) in g.nodes.enumerated() where n.domain.isEmpty && n.op == "Dropout" {
                // Training-mode Dropout with a seeded mask; its gradient needs the mask.
                var node = n
                while node.inputs.count < 2 { node.inputs.append("") }
                node.inputs = [node.inputs[0], node.inputs[1], constant("\(n.name).training", TensorData(dtype: .bool, shape: [], values: [1]))]
                if node.outputs.count < 2 {
                    let mask = fresh("\(n.name).mask")
                    let t = TensorType(.bool, types[n.inputs[0]]!.shape)
                    types[mask] = t
                    node.outputs.append(Value(mask, t))
                }
                if node.attributes["seed"] == nil { node.attributes["seed"] = .int(Int(stableSeed(n.name))) }
                g.nodes[i] = node
            }
        }

        mutating func lossNode(logits: Value, classes: Int) throws {
            let n = logits.type.shape[0]
            g.inputs += [Value(Autodiff.labels, TensorType(.i64, [n])), Value(Autodiff.classWeights, TensorType(.f32, [Dim(classes)])),
                         Value(Autodiff.learningRate, TensorType(.f32, []))]
            taken.formUnion([Autodiff.labels, Autodiff.classWeights, Autodiff.learningRate, Autodiff.loss])
            types[Autodiff.labels] = TensorType(.i64, [n])
            types[Autodiff.classWeights] = TensorType(.f32, [Dim(classes)])
            types[Autodiff.learningRate] = TensorType(.f32, [])
            let (op, attributes) = lossOp()
            emit(op, [logits.name, Autodiff.labels, Autodiff.classWeights], [(Autodiff.loss, TensorType(.f32, []))],
                 attributes: attributes, name: "loss")
            let seed = constant("loss.seed", TensorData(floats: [1], shape: []))
            let dz = fresh("\(logits.name).grad")
            emit(op + "Grad", [seed, logits.name, Autodiff.labels, Autodiff.classWeights], [(dz, logits.type)],
                 attributes: attributes, name: "loss.grad")
            contributions[logits.name] = [dz]
        }

        func lossOp() -> (String, [String: Attribute]) {
            switch options.loss {
            case .crossEntropy: return ("SoftmaxCrossEntropy", [:])
            case .focal(let gamma): return ("FocalLoss", ["gamma": .float(gamma)])
            case .ldam(let counts, let maxM, let scale):
                return ("LDAMLoss", ["class_counts": .ints(counts), "max_m": .float(maxM), "scale": .float(scale)])
            }
        }

        /// Values whose gradient is wanted: trained parameters and everything computed from them.
        func needingGradient(_ forward: [Node]) -> Set<String> {
            var need = Set(g.parameters.filter { $0.role == .param && $0.dtype == .f32 }.map(\.name))
            for n in forward where n.inputs.contains(where: need.contains) {
                for o in n.outputs where o.type.dtype.isFloatingPoint { need.insert(o.name) }
            }
            return need
        }

        /// The gradient of `v`: its one contribution, or their Sum.
        mutating func gradient(of v: String) -> String? {
            guard let parts = contributions[v], !parts.isEmpty else { return nil }
            if parts.count == 1 { return parts[0] }
            let total = fresh("\(v).grad")
            emit("Sum", domain: "", parts, [(total, types[v]!)], name: "\(v).grad.sum")
            contributions[v] = [total]
            return total
        }

        mutating func add(_ v: String, _ grad: String) { contributions[v, default: []].append(grad) }

        /// A gradient reduced to `like`'s shape where `like` was broadcast.
        mutating func reduced(_ grad: String, to like: String) -> String {
            if types[grad]?.shape == types[like]?.shape { return grad }
            return emit("ReduceToShape", [grad, like], [(fresh("\(like).grad.part"), types[like]!)], name: "\(like).grad.reduce")[0]
        }

        mutating func backward() throws {
            let forward = Array(g.nodes.dropLast(2))  // without the loss and its gradient
            let need = needingGradient(forward)
            for n in forward.reversed() {
                guard let out = n.outputs.first, let dy = gradient(of: out.name) else { continue }
                let wants = n.inputs.map { !$0.isEmpty && need.contains($0) }
                guard wants.contains(true) else { continue }
                try rule(n, dy: dy, wants: wants)
            }
        }

        mutating func part(_ v: String) -> String { fresh("\(v).grad.part") }

        // The backward rule of each op: gradient contributions to the inputs that want one.
        mutating func rule(_ n: Node, dy: String, wants: [Bool]) throws {
            let x = n.inputs.first ?? ""
            func t(_ v: String) -> TensorType { types[v]! }
            switch (n.domain, n.op) {
            case ("", "Conv"):
                let attrs = n.attributes
                if wants[0] { add(x, emit("ConvGradData", [dy, n.inputs[1], x], [(part(x), t(x))], attributes: attrs, name: "\(n.name).grad.data")[0]) }
                if wants[1] { add(n.inputs[1], emit("ConvGradWeight", [x, dy, n.inputs[1]], [(part(n.inputs[1]), t(n.inputs[1]))], attributes: attrs, name: "\(n.name).grad.weight")[0]) }
                if wants.count > 2 && wants[2] { add(n.inputs[2], emit("ConvGradBias", [dy], [(part(n.inputs[2]), t(n.inputs[2]))], name: "\(n.name).grad.bias")[0]) }
            case ("kiln", "BatchNormTraining"):
                let outs = emit("BatchNormGrad", [dy, x, n.inputs[1], n.outputs[1].name, n.outputs[2].name],
                                [(part(x), t(x)), (part(n.inputs[1]), t(n.inputs[1])), (part(n.inputs[2]), t(n.inputs[2]))], name: "\(n.name).grad")
                for k in 0..<3 where wants[k] { add(n.inputs[k], outs[k]) }
            case ("", "Relu"):
                add(x, emit("ReluGrad", [dy, n.outputs[0].name], [(part(x), t(x))], name: "\(n.name).grad")[0])
            case ("", "LeakyRelu"):
                add(x, emit("LeakyReluGrad", [dy, x], [(part(x), t(x))], attributes: n.attributes.filter { $0.key == "alpha" }, name: "\(n.name).grad")[0])
            case ("", "Add"), ("", "Sum"):
                for (k, v) in n.inputs.enumerated() where wants[k] { add(v, reduced(dy, to: v)) }
            case ("", "Sub"):
                if wants[0] { add(x, reduced(dy, to: x)) }
                if wants[1] {
                    let minus = constant("minus_one", TensorData(floats: [-1], shape: []))
                    let neg = emit("Mul", domain: "", [dy, minus], [(part(n.inputs[1]), t(dy))], name: "\(n.name).grad.neg")[0]
                    add(n.inputs[1], reduced(neg, to: n.inputs[1]))
                }
            case ("", "Mul"):
                for k in 0..<2 where wants[k] {
                    let other = n.inputs[1 - k], v = n.inputs[k]
                    let prod = emit("Mul", domain: "", [dy, other], [(part(v), t(dy))], name: "\(n.name).grad.\(k)")[0]
                    add(v, reduced(prod, to: v))
                }
            case ("", "MaxPool"):
                guard n.outputs.count == 1 else { throw unsupported(n, "MaxPool with an Indices output") }
                add(x, emit("MaxPoolGrad", [dy, x], [(part(x), t(x))], attributes: n.attributes.filter { $0.key != "storage_order" }, name: "\(n.name).grad")[0])
            case ("", "AveragePool"):
                add(x, emit("AveragePoolGrad", [dy, x], [(part(x), t(x))], attributes: n.attributes, name: "\(n.name).grad")[0])
            case ("", "GlobalAveragePool"):
                add(x, emit("GlobalAveragePoolGrad", [dy, x], [(part(x), t(x))], name: "\(n.name).grad")[0])
            case ("", "Flatten"), ("", "Reshape"), ("", "Squeeze"), ("", "Unsqueeze"):
                add(x, emit("ReshapeLike", [dy, x], [(part(x), t(x))], name: "\(n.name).grad")[0])
            case ("", "Identity"):
                add(x, dy)
            case ("", "Transpose"):
                let rank = t(x).rank
                var perm = Array((0..<rank).reversed())
                if case .ints(let p)? = n.attributes["perm"] { perm = p }
                var inverse = [Int](repeating: 0, count: rank)
                for (i, p) in perm.enumerated() { inverse[p] = i }
                add(x, emit("Transpose", domain: "", [dy], [(part(x), t(x))], attributes: ["perm": .ints(inverse)], name: "\(n.name).grad")[0])
            case ("", "Dropout"):
                var ratio: Float = 0.5
                if n.inputs.count > 1, !n.inputs[1].isEmpty {
                    guard let r = g.parameter(named: n.inputs[1])?.initializer.tensor else { throw unsupported(n, "a ratio computed at run time") }
                    ratio = Float(r.double(at: 0))
                }
                add(x, emit("DropoutGrad", [dy, n.outputs[1].name], [(part(x), t(x))], attributes: ["ratio": .float(ratio)], name: "\(n.name).grad")[0])
            case ("", "Slice"):
                add(x, emit("SliceGrad", [dy] + n.inputs, [(part(x), t(x))], name: "\(n.name).grad")[0])
            case ("", "Pad"):
                if case .string(let mode)? = n.attributes["mode"], mode != "constant" { throw unsupported(n, "Pad mode '\(mode)'") }
                guard n.inputs.count <= 3 || n.inputs[3].isEmpty else { throw unsupported(n, "Pad with axes") }
                add(x, emit("PadGrad", [dy, x, n.inputs[1]], [(part(x), t(x))], name: "\(n.name).grad")[0])
            case ("", "Concat"):
                var axis = 0
                if case .int(let a)? = n.attributes["axis"] { axis = a < 0 ? a + t(dy).rank : a }
                var start = 0
                for (k, v) in n.inputs.enumerated() {
                    guard let size = t(v).shape[axis].value else { throw unsupported(n, "a symbolic size along the concatenation axis") }
                    defer { start += size }
                    guard wants[k] else { continue }
                    let s = constant("\(n.name).grad.start", TensorData(int64s: [Int64(start)], shape: [1]))
                    let e = constant("\(n.name).grad.end", TensorData(int64s: [Int64(start + size)], shape: [1]))
                    let a = constant("\(n.name).grad.axis", TensorData(int64s: [Int64(axis)], shape: [1]))
                    add(v, emit("Slice", domain: "", [dy, s, e, a], [(part(v), t(v))], name: "\(n.name).grad.\(k)")[0])
                }
            case ("", "Gemm"):
                try gemmRule(n, dy: dy, wants: wants)
            case ("", "MatMul"):
                guard t(x).rank == 2, t(n.inputs[1]).rank == 2 else { throw unsupported(n, "MatMul of rank other than 2") }
                if wants[0] { add(x, emit("Gemm", domain: "", [dy, n.inputs[1]], [(part(x), t(x))], attributes: ["transB": .int(1)], name: "\(n.name).grad.a")[0]) }
                if wants[1] { add(n.inputs[1], emit("Gemm", domain: "", [x, dy], [(part(n.inputs[1]), t(n.inputs[1]))], attributes: ["transA": .int(1)], name: "\(n.name).grad.b")[0]) }
            case ("kiln", "NormedLinear"):
                let outs = emit("NormedLinearGrad", [dy, x, n.inputs[1]], [(part(x), t(x)), (part(n.inputs[1]), t(n.inputs[1]))], name: "\(n.name).grad")
                for k in 0..<2 where wants[k] { add(n.inputs[k], outs[k]) }
            default:
                throw unsupported(n, nil)
            }
        }

        // Y = α·A'·B' + β·C with A' = A or Aᵀ, B' = B or Bᵀ.
        mutating func gemmRule(_ n: Node, dy: String, wants: [Bool]) throws {
            func int(_ k: String) -> Int { if case .int(let v)? = n.attributes[k] { return v }; return 0 }
            func float(_ k: String, _ d: Float) -> Float { if case .float(let v)? = n.attributes[k] { return v }; return d }
            let transA = int("transA"), transB = int("transB"), alpha = float("alpha", 1), beta = float("beta", 1)
            let a = n.inputs[0], b = n.inputs[1]
            let ta = types[a]!, tb = types[b]!
            if wants[0] {
                let grad = transA == 0
                    ? emit("Gemm", domain: "", [dy, b], [(part(a), ta)], attributes: ["alpha": .float(alpha), "transB": .int(transB == 0 ? 1 : 0)], name: "\(n.name).grad.a")[0]
                    : emit("Gemm", domain: "", [b, dy], [(part(a), ta)], attributes: ["alpha": .float(alpha), "transA": .int(transB), "transB": .int(1)], name: "\(n.name).grad.a")[0]
                add(a, grad)
            }
            if wants[1] {
                let grad = transB == 0
                    ? emit("Gemm", domain: "", [a, dy], [(part(b), tb)], attributes: ["alpha": .float(alpha), "transA": .int(transA == 0 ? 1 : 0)], name: "\(n.name).grad.b")[0]
                    : emit("Gemm", domain: "", [dy, a], [(part(b), tb)], attributes: ["alpha": .float(alpha), "transA": .int(1), "transB": .int(transA)], name: "\(n.name).grad.b")[0]
                add(b, grad)
            }
            if n.inputs.count > 2, !n.inputs[2].isEmpty, wants[2] {
                var grad = reduced(dy, to: n.inputs[2])
                if beta != 1 {
                    let k = constant("\(n.name).beta", TensorData(floats: [beta], shape: []))
                    grad = emit("Mul", domain: "", [grad, k], [(part(n.inputs[2]), types[n.inputs[2]]!)], name: "\(n.name).grad.beta")[0]
                }
                add(n.inputs[2], grad)
            }
        }

        func unsupported(_ n: Node, _ what: String?) -> CompilerError {
            .training("no backward rule for \(what ?? n.qualifiedOp) (node '\(n.name)'); differentiable ops: \(Autodiff.differentiableOps.sorted().joined(separator: ", "))")
        }

        /// One SGD node per trained parameter with a gradient; the outputs of the step.
        mutating func updates() {
            var outputs = [Value(Autodiff.loss, TensorType(.f32, [])), g.outputs[0]]
            let attributes: [String: Attribute] = ["momentum": .float(options.momentum), "weight_decay": .float(options.weightDecay),
                                                   "nesterov": .int(options.nesterov ? 1 : 0)]
            for p in g.parameters where p.role == .param && p.dtype == .f32 {
                guard let grad = gradient(of: p.name) else { continue }
                let v = Autodiff.velocity(p.name)
                g.parameters.append(Parameter(name: v, dtype: .f32, shape: p.shape, role: .buffer, initializer: .zeros))
                types[v] = p.type
                let outs = emit("SGD", [p.name, grad, v, Autodiff.learningRate], [(Autodiff.next(p.name), p.type), (Autodiff.next(v), p.type)],
                                attributes: attributes, name: "\(p.name).sgd")
                outputs += outs.map { Value($0, p.type) }
            }
            for (_, next) in runningStats { outputs.append(Value(next, types[next]!)) }
            g.outputs = outputs
        }
    }
}

func uniqueName(_ base: String, taken: Set<String>) -> String {
    var n = base, k = 1
    while taken.contains(n) { n = "\(base)_\(k)"; k += 1 }
    return n
}

/// A stable 31-bit seed from a name (FNV-1a), for Dropout masks.
func stableSeed(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
    return h & 0x7fff_ffff
}
