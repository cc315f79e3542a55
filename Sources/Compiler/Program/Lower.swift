import CKernels
import Foundation
import Graph


/// Turns a graph with static shapes (after the passes) into a `Program`: one step per node
/// (views such as Reshape cost nothing), weights packed into one buffer, and every value
/// placed in one arena by liveness, reusing memory and writing elementwise results in place.
public enum Lowering {
    /// Multiply-adds × 2 of the training kernels the graph statistics do not know.
    static func flops(of kernel: Program.Kernel, batch: Int) -> Int? {
        switch kernel {
        case .convGradData(let c), .convGradWeight(let c):
            return 2 * batch * c.outChannels * c.channels * c.kernelH * c.kernelW * c.outHeight * c.outWidth
        default: return nil
        }
    }

    /// Nodes whose output shares its (first) input's storage: reshapes, the training step's
    /// ReshapeLike (the gradient of a reshape), and transposes that only move axes of size 1
    /// (a ViT's [1, 197, 768] ↔ [197, 1, 768]), which leave the data in the same order.
    static func isView(_ n: Node) -> Bool {
        if case .view? = OpRegistry.definition(of: n)?.lowering { return true }
        if n.domain.isEmpty, n.op == "Transpose", n.outputs.count == 1, let out = n.outputs[0].type.shape.staticSizes {
            var perm = Array((0..<out.count).reversed())
            if case .ints(let p)? = n.attributes["perm"] { perm = p.map { Int($0) } }
            guard perm.count == out.count else { return false }
            let moved = out.indices.filter { out[$0] != 1 }.map { perm[$0] }
            return zip(moved, moved.dropFirst()).allSatisfy { $0 < $1 }
        }
        return false
    }

    public static func lower(_ g: Graph, batch: Int, options: CompileOptions = .environment) throws -> Program {
        var lowerer = try Lowerer(g, batch: batch, options: options)
        for (i, n) in g.nodes.enumerated() { try lowerer.lower(n, at: i) }
        return try lowerer.assemble()
    }

    /// One lowering in progress: parameter slots, the storages with their lifetimes, and the
    /// steps, built node by node.
    struct Lowerer {
        struct Pending {
            var name: String
            var op: String
            var kernel: Program.Kernel
            var inputs: [String]
            var outputs: [String]
            var flops: Int
        }
        /// Integer and bool values live in f32 storage (see Program.Tensor).
        static let storable: Set<DType> = [.f32, .i64, .i32, .i8, .u8, .bool]

        let g: Graph, batch: Int, options: CompileOptions
        var parameters: [Program.ParameterSlot] = []
        var parameterBytes = 0
        var paramTensor: [String: Program.Tensor] = [:]
        var constants: [String: TensorData] = [:]
        /// Every value's storage with its lifetime, as the arena planner takes it.
        var storages: [ArenaPlanner.Request] = []
        var storageOf: [String: Int] = [:]
        var shapeOf: [String: [Int]] = [:]
        var dtypeOf: [String: DType] = [:]
        var pending: [Pending] = []
        /// The value whose storage a view shares, and the last node to read each storage.
        var root: [String: String] = [:]
        var lastReader: [String: Int] = [:]
        /// Steps a Softmax joined (a batched product's), with the Softmax's node index.
        var softmaxNode: [Int: Int] = [:]
        /// Where a view starts in its storage (bytes), when not at its start: the slices of
        /// `sliceOffsets`, and views and in-place results of them.
        var viewOffset: [String: Int] = [:]
        /// Static shapes of the graph's inputs and node outputs.
        var valueShape: [String: [Int]] = [:]
        /// Outputs written over the state they replace, in the parameter buffer.
        var updatedInPlace: Set<String> = []
        let nodeFlops: [String: Int]

        /// Slots for the f32 parameters (others are constants), storages for the inputs, and
        /// the last reader of every storage.
        init(_ g: Graph, batch: Int, options: CompileOptions) throws {
            self.g = g
            self.batch = batch
            self.options = options
            nodeFlops = Dictionary(g.stats(batch: batch).nodes.map { ($0.name, $0.flops) }, uniquingKeysWith: { a, _ in a })
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
            for v in g.inputs {
                guard Self.storable.contains(v.type.dtype), let shape = v.type.shape.staticSizes else {
                    throw CompilerError.lowering("graph input '\(v.name)' is \(v.type); the compiled path takes static f32, f64, f16, bf16 and integer or bool inputs")
                }
                dtypeOf[v.name] = v.type.dtype
                newStorage(v.name, shape, at: -1)
            }
            for v in g.inputs { valueShape[v.name] = v.type.shape.staticSizes }
            for n in g.nodes { for o in n.outputs { valueShape[o.name] = o.type.shape.staticSizes } }
            // Last node to read each storage, following views to the value that owns the storage.
            for (i, n) in g.nodes.enumerated() {
                for input in n.inputs where !input.isEmpty { lastReader[rootOf(input)] = i }
                if isView(n), let src = n.inputs.first, paramTensor[src] == nil { root[n.outputs[0].name] = src }
                if sliceOffsets(n) != nil { for o in n.outputs where !o.name.isEmpty { root[o.name] = n.inputs[0] } }
            }
            for o in g.outputs { lastReader[rootOf(o.name)] = Int.max }
        }

        func rootOf(_ v: String) -> String { root[v].map(rootOf) ?? v }

        /// A Split or Gather that takes contiguous slices of a computed f32 value — every axis
        /// before the one it cuts of size 1, the Gather's index one constant (a ViT's q, k and
        /// v out of the projection's [3, …] tensor) — as byte offsets of its outputs in the
        /// input: the outputs are views, no copy.
        func sliceOffsets(_ n: Node) -> [Int]? {
            guard n.domain.isEmpty, n.op == "Split" || n.op == "Gather", n.outputs.allSatisfy({ $0.type.dtype == .f32 }),
                  let src = n.inputs.first, paramTensor[src] == nil, constants[src] == nil, let shape = valueShape[src] ?? nil else { return nil }
            var axis = 0
            if case .int(let a)? = n.attributes["axis"] { axis = a }
            if axis < 0 { axis += shape.count }
            guard axis >= 0, axis < shape.count, shape[..<axis].allSatisfy({ $0 == 1 }) else { return nil }
            let slab = shape[(axis + 1)...].reduce(1, *) * DType.f32.byteSize
            if n.op == "Gather" {
                guard n.inputs.count == 2, let t = constants[n.inputs[1]], t.count == 1, t.shape.count <= 1 else { return nil }
                var i = Int(t.double(at: 0))
                if i < 0 { i += shape[axis] }
                guard i >= 0, i < shape[axis] else { return nil }
                return [i * slab]
            }
            var offsets: [Int] = [], at = 0
            for o in n.outputs {
                guard !o.name.isEmpty, let out = o.type.shape.staticSizes, out.count == shape.count else { return nil }
                offsets.append(at * slab)
                at += out[axis]
            }
            return at == shape[axis] ? offsets : nil
        }

        /// A Concat whose inputs can be written where the output keeps them: every axis before
        /// the joined one of size 1 (so each input is one contiguous slab of the output), each
        /// input a value computed by an earlier step into storage of its own (no view, no graph
        /// input) that nothing reads after the Concat. Those storages become slabs of the
        /// output's — the producers write straight into it — and the Concat is no step
        /// (Inception's, DenseNet's and SqueezeNet's joins at batch 1).
        mutating func concatInPlace(_ n: Node, at nodeIndex: Int, outShape: [Int]) -> Bool {
            guard n.domain.isEmpty, n.op == "Concat", n.outputs.count == 1, n.outputs[0].type.dtype == .f32, !outShape.isEmpty,
                  n.inputs.count > 1, Set(n.inputs).count == n.inputs.count else { return false }
            var axis = 0
            if case .int(let a)? = n.attributes["axis"] { axis = a }
            if axis < 0 { axis += outShape.count }
            guard axis >= 0, axis < outShape.count, outShape[..<axis].allSatisfy({ $0 == 1 }) else { return false }
            var slabs: [(storage: Int, names: [String])] = []
            for input in n.inputs {
                guard !input.isEmpty, let s = storageOf[input], storages[s].first >= 0, dtypeOf[input] ?? .f32 == .f32,
                      !slabs.contains(where: { $0.storage == s }) else { return false }
                // Every value in that storage (the producer's output and any result written over
                // it in place) whole, unshifted, and read by nothing after the Concat.
                let names = storageOf.filter { $0.value == s }.map(\.key)
                guard names.allSatisfy({ viewOffset[$0] == nil && root[$0] == nil && (lastReader[$0] ?? -1) <= nodeIndex }),
                      storages[s].bytes == (shapeOf[input] ?? []).reduce(1, *) * DType.f32.byteSize else { return false }
                slabs.append((s, names))
            }
            guard slabs.reduce(0, { $0 + storages[$1.storage].bytes }) == outShape.reduce(1, *) * DType.f32.byteSize else { return false }
            let out = n.outputs[0].name
            newStorage(out, outShape, at: pending.count)
            let joined = storageOf[out]!
            var at = 0
            for (s, names) in slabs {
                storages[joined].first = min(storages[joined].first, storages[s].first)
                for name in names {
                    storageOf[name] = joined
                    viewOffset[name] = at
                }
                at += storages[s].bytes
                storages[s].bytes = 0
            }
            return true
        }

        mutating func newStorage(_ name: String, _ shape: [Int], at step: Int) {
            storageOf[name] = storages.count
            shapeOf[name] = shape
            // Every value is held as f32 (integer and bool values too: see Program.Tensor).
            storages.append(ArenaPlanner.Request(bytes: shape.reduce(1, *) * DType.f32.byteSize, first: step, last: step))
        }

        mutating func use(_ name: String, at step: Int) {
            if let s = storageOf[name] { storages[s].last = max(storages[s].last, step) }
        }

        /// Node `n` (the `nodeIndex`th): a view of its input's storage, or a step with its
        /// kernel, its output written in place where an elementwise input dies here.
        mutating func lower(_ node: Node, at nodeIndex: Int) throws {
            var n = node
            // Add and Mul are commutative: the operand of the output's shape first, so a bias
            // added before the value ([C] + [N, T, C], as exporters write Linear) still takes
            // the broadcasting kernel.
            if n.domain.isEmpty, ["Add", "Mul"].contains(n.op), n.inputs.count == 2, let out = n.outputs.first?.type.shape.staticSizes,
               shapeOf[n.inputs[0]] ?? paramTensor[n.inputs[0]]?.shape != out, shapeOf[n.inputs[1]] ?? paramTensor[n.inputs[1]]?.shape == out {
                n.inputs.swapAt(0, 1)
            }
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
                    viewOffset[n.outputs[0].name] = viewOffset[src]
                    return
                }
                if let p = paramTensor[src] {
                    paramTensor[n.outputs[0].name] = Program.Tensor(byteOffset: p.byteOffset, shape: outShapes[0], inParameters: true, storage: .f32)
                    return
                }
            }
            if concatInPlace(n, at: nodeIndex, outShape: outShapes.first ?? []) { return }
            if let offsets = sliceOffsets(n), let s = storageOf[n.inputs[0]] {
                for (k, o) in n.outputs.enumerated() {
                    storageOf[o.name] = s
                    shapeOf[o.name] = outShapes[k]
                    viewOffset[o.name] = (viewOffset[n.inputs[0]] ?? 0) + offsets[k]
                }
                return
            }
            for o in n.outputs where !o.name.isEmpty {
                guard Self.storable.contains(o.type.dtype) else {
                    throw CompilerError.lowering("node '\(n.name)' (\(n.qualifiedOp)) produces \(o.type); the compiled path handles floating-point (computed in f32), integer and bool values")
                }
                dtypeOf[o.name] = o.type.dtype
            }
            // Nodes producing integer or bool values run their reference kernel: the fast
            // kernels are f32 ones.
            var kernel = n.outputs.contains(where: { !$0.name.isEmpty && $0.type.dtype != .f32 })
                ? Program.Kernel.reference(n) : try kernel(for: n, outShapes: outShapes)
            let liveOutputs = n.outputs.filter { !$0.name.isEmpty }.map(\.name)
            // A Softmax over the last axis of the batched product just lowered joins that step:
            // each product's rows are normalised while in cache. The product's output is still
            // written whole, for any other reader.
            if case .softmax(false, _, let length, 1) = kernel, let last = pending.last, case .batchedMatMul(var b) = last.kernel,
               !b.softmax, b.n == length, last.outputs == [n.inputs[0]], liveOutputs.count == 1 {
                b.softmax = true
                pending[step - 1].kernel = .batchedMatMul(b)
                pending[step - 1].outputs.append(liveOutputs[0])
                pending[step - 1].op += "+" + n.qualifiedOp
                use(n.inputs[0], at: step - 1)
                newStorage(liveOutputs[0], outShapes[0], at: step - 1)
                softmaxNode[step - 1] = nodeIndex
                return
            }
            // Then the product of those probabilities by V joins it too, when nothing else reads
            // the scores or the probabilities: attention in one step, its [m, n] matrices kept
            // in the thread's scratch (up to 2²⁰ values each).
            if case .batchedMatMul(let pv) = kernel, let last = pending.last, case .batchedMatMul(var b) = last.kernel, b.softmax, b.value == nil,
               let sNode = softmaxNode[step - 1], last.outputs.count == 2, n.inputs.count == 2, n.inputs[0] == last.outputs[1],
               lastReader[rootOf(last.outputs[1])] == nodeIndex, (lastReader[rootOf(last.outputs[0])] ?? -1) <= sNode,
               !pv.transB, pv.alpha == 1, pv.m == b.m, pv.k == b.n, pv.aOffsets.count == b.aOffsets.count,
               pv.aOffsets == b.aOffsets.indices.map({ $0 * b.m * b.n }), b.m * b.n <= 1 << 20, liveOutputs.count == 1 {
                b.value = Program.BatchedMatMul.Value(n: pv.n, bOffsets: pv.bOffsets)
                pending[step - 1].kernel = .batchedMatMul(b)
                pending[step - 1].inputs.append(n.inputs[1])
                pending[step - 1].outputs = [liveOutputs[0]]
                pending[step - 1].op += "+" + n.qualifiedOp
                pending[step - 1].flops += Lowering.flops(of: kernel, batch: batch) ?? nodeFlops[n.name] ?? 0
                for v in last.outputs { if let s = storageOf[v] { storages[s].bytes = 0 } }
                use(n.inputs[1], at: step - 1)
                newStorage(liveOutputs[0], outShapes[0], at: step - 1)
                return
            }
            // A 1×1 convolution reading only a channel gate's product x ⊙ s (squeeze-and-
            // excitation: s [N, C, 1, 1] the sigmoid of the pooled branch), lowered just before
            // it and read by nothing else: one step that scales the packed weight's columns by
            // s per image, (W ⊙ sᵀ) · x, instead of a pass over x — when the weight is smaller
            // than x (fewer output channels than positions: every gate but the last stages').
            if case .conv(var c) = kernel, c.algorithm == .gemm1x1, c.group == 1, c.outChannels % 8 == 0, c.expand == nil, !c.deferred,
               c.gate == nil, c.outChannels < c.height * c.width, options.fuseGate, paramTensor[n.inputs[1]] != nil,
               let last = pending.last, case .binary(2, let period, let inner, 1, _) = last.kernel,
               period == batch * c.channels, inner == c.height * c.width, last.inputs.count == 2,
               last.outputs == [n.inputs[0]], lastReader[rootOf(n.inputs[0])] == nodeIndex, viewOffset[n.inputs[0]] == nil,
               let xs = storageOf[last.inputs[0]], viewOffset[last.inputs[0]] == nil, shapeOf[last.inputs[0]] == [batch, c.channels, c.height, c.width],
               storageOf[last.inputs[1]] != nil, shapeOf[last.inputs[1]].map({ $0.reduce(1, *) }) == batch * c.channels, liveOutputs.count == 1 {
                c.gate = c.scratch.total
                c.scratch.total += c.outChannels * c.channels
                var folded = [last.inputs[0], n.inputs[1]]
                folded.append(n.inputs.count > 2 ? n.inputs[2] : "")
                folded.append(n.inputs.count > 3 ? n.inputs[3] : "")
                folded.append(last.inputs[1])
                // The product is never made (its storage none, unless it took x's in place).
                if let s = storageOf[n.inputs[0]], s != xs { storages[s].bytes = 0 }
                pending[step - 1].kernel = .conv(c)
                pending[step - 1].inputs = folded
                pending[step - 1].outputs = [liveOutputs[0]]
                pending[step - 1].op += "+" + n.qualifiedOp
                pending[step - 1].flops += Lowering.flops(of: kernel, batch: batch) ?? nodeFlops[n.name] ?? 0
                for i in folded where !i.isEmpty { use(i, at: step - 1) }
                newStorage(liveOutputs[0], outShapes[0], at: step - 1)
                return
            }
            var op = n.qualifiedOp, extraFlops = 0, inputs = n.inputs
            // A depthwise convolution whose input is the 1×1 convolution just lowered, read by
            // nothing else: one step that makes the expanded tensor band by band in the
            // thread's scratch (MobileNet's and EfficientNet's inverted residual blocks), when
            // it is large (1 MiB an image or more; measured on Zen 2, fusing from 128 KiB lost
            // 5–9 % on mobilenet_v2, mobilenet_v3_large and efficientnet_b0 at batch 1, and
            // from 512 KiB efficientnet_b0 ran at 0.69–0.70× onnxruntime against 0.75–0.78).
            // The 1×1's step stays, deferred, for its packed weight.
            if case .conv(var dw) = kernel, dw.algorithm == .depthwise, dw.outChannels == dw.channels, dw.group == dw.channels,
               n.inputs.count < 4 || n.inputs[3].isEmpty, let last = pending.last, case .conv(var pw) = last.kernel,
               pw.algorithm == .gemm1x1, pw.group == 1, pw.outChannels == dw.channels, pw.outChannels % 8 == 0, !pw.deferred,
               pw.expand == nil, last.outputs == [n.inputs[0]], last.inputs.count < 4 || last.inputs[3].isEmpty,
               paramTensor[last.inputs[1]] != nil, lastReader[rootOf(n.inputs[0])] == nodeIndex, viewOffset[n.inputs[0]] == nil,
               dw.channels * dw.height * dw.width * DType.f32.byteSize >= 1 << 20, options.fuseExpand {
                // Bands of the expanded tensor of about 256 KiB (the rows a band's outputs read).
                let span = (dw.kernelH - 1) * dw.dilationH + 1
                let fit = (1 << 18) / max(1, dw.channels * dw.width * DType.f32.byteSize)
                let bandRows = max(1, (max(fit, span) - span) / dw.strideH + 1)
                let capacityRows = (bandRows - 1) * dw.strideH + span
                dw.expand = Program.Expand(step: step - 1, bandRows: bandRows,
                                           capacityRows: capacityRows, offset: dw.scratch.total)
                dw.scratch.total += capacityRows * dw.channels * dw.width
                pw.deferred = true
                pending[step - 1].kernel = .conv(pw)
                extraFlops = pending[step - 1].flops
                pending[step - 1].flops = 0
                kernel = .conv(dw)
                op = last.op + "+" + op
                // The step reads the 1×1's input (kept alive to here); the expanded tensor is
                // never stored, and the 1×1's step has no output of its own.
                if let s = storageOf[n.inputs[0]] { storages[s].bytes = 0 }
                pending[step - 1].outputs = []
                inputs[0] = last.inputs[0]
                use(last.inputs[0], at: step)
            }
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
                    viewOffset[liveOutputs[0]] = viewOffset[src]
                    inPlace = true
                }
            default: break
            }
            // State updated in place: SGD's new parameter and velocity, training BatchNorm's
            // next running statistics, written over the values they replace when this step
            // is their last reader (the trainer then has nothing to copy back).
            var updated: Set<Int> = []
            for (k, j) in Self.stateUpdates(kernel) where j < n.inputs.count && k < n.outputs.count {
                let (state, next) = (n.inputs[j], n.outputs[k].name)
                guard !next.isEmpty, let slot = paramTensor[state], lastReader[state] == nodeIndex, slot.count == outShapes[k].reduce(1, *) else { continue }
                paramTensor[next] = slot
                updatedInPlace.insert(next)
                updated.insert(k)
            }
            if !inPlace {
                for (k, o) in n.outputs.enumerated() where !o.name.isEmpty && !updated.contains(k) { newStorage(o.name, outShapes[k], at: step) }
            }
            pending.append(Pending(name: n.name, op: op, kernel: kernel, inputs: inputs, outputs: liveOutputs,
                                   flops: (flops(of: kernel, batch: batch) ?? nodeFlops[n.name] ?? 0) + extraFlops))
        }

        /// (output, input) pairs of a kernel whose output is the input's next value.
        static func stateUpdates(_ kernel: Program.Kernel) -> [(Int, Int)] {
            switch kernel {
            case .sgd: return [(0, 0), (1, 2)]               // p' ← p, v' ← v
            case .batchNormTraining: return [(3, 3), (4, 4)]  // running mean and variance
            default: return []
            }
        }

        /// Node `n`'s compiled kernel (the shape tables are borrowed only for the call, so
        /// the next node's updates do not copy them).
        func kernel(for n: Node, outShapes: [[Int]]) throws -> Program.Kernel {
            let shapes = shapeOf, params = paramTensor, consts = constants
            return try selectKernel(n, g: g, batch: batch, shapeOf: { shapes[$0] ?? params[$0]?.shape ?? consts[$0]?.shape ?? [] },
                                    constants: constants, params: paramTensor, outShapes: outShapes, options: options)
        }

        /// The program: outputs and inputs live to the end, the arena planned, every step's
        /// operands located.
        mutating func assemble() throws -> Program {
            for o in g.outputs where !updatedInPlace.contains(o.name) {
                guard let s = storageOf[o.name] else {
                    throw CompilerError.lowering("graph output '\(o.name)' is a parameter or constant; nothing to compute")
                }
                storages[s].last = pending.count
            }
            // Inputs stay intact through the whole program, so executing again on the same
            // input gives the same result (their storage is never reused for later values).
            for v in g.inputs { if let s = storageOf[v.name] { storages[s].last = pending.count } }
            let (offsets, arena) = ArenaPlanner.place(storages)
            func tensor(_ name: String) -> Program.Tensor? {
                if let p = paramTensor[name] { return p }
                guard let s = storageOf[name] else { return nil }
                return Program.Tensor(byteOffset: offsets[s] + (viewOffset[name] ?? 0), shape: shapeOf[name] ?? [], inParameters: false, storage: .f32, dtype: dtypeOf[name] ?? .f32)
            }
            func operand(_ name: String) -> Program.Operand {
                if name.isEmpty { return .none }
                if let t = tensor(name) { return .tensor(t) }
                if let c = constants[name] { return .constant(c) }
                return .none
            }
            let steps = pending.map { p in
                Program.Step(name: p.name, op: p.op, kernel: p.kernel, inputs: p.inputs.map(operand), outputs: p.outputs.compactMap(tensor), flops: p.flops)
            }
            let scratch = steps.map { s -> Int in
                switch s.kernel {
                case .conv(let c), .convGradData(let c), .convGradWeight(let c): return c.scratch.total
                case .batchedMatMul(let b): return b.scratchLayout.total
                default: return 0
                }
            }.max() ?? 0
            let live = zip(storages, offsets).map { Program.Storage(byteOffset: $1, bytes: $0.bytes, firstStep: $0.first, lastStep: $0.last) }
            return Program(batch: batch, steps: steps, arenaBytes: arena, storages: live, parameters: parameters, parameterBytes: parameterBytes,
                           inputs: g.inputs.map { Program.Binding(name: $0.name, tensor: tensor($0.name)!) },
                           outputs: g.outputs.map { Program.Binding(name: $0.name, tensor: tensor($0.name)!) },
                           scratchCount: scratch)
        }
    }

    /// kiln_activation codes, and the codes of kiln_binary / kiln_elementwise_chain.
    static let activationCodes: [String: Int32] = [
        "Relu": 1, "LeakyRelu": 2, "Clip": 3, "Sigmoid": 4, "HardSwish": 5, "Gelu": 6, "Erf": 8, "HardSigmoid": 9, "Sqrt": 10,
        "Tanh": 11, "Exp": 12, "Log": 13, "Abs": 14, "Neg": 15, "Reciprocal": 16, "Elu": 17, "Softplus": 18, "Mish": 19, "Swish": 20,
        "QuantizeDequantize": 21,
    ]
    static let arithmeticCodes: [String: Int32] = ["Add": 0, "Sub": 1, "Mul": 2, "Div": 3]
    /// kiln_reduce_axis codes (enum kiln_reduce).
    static let reductionCodes: [String: Int32] = ["ReduceSum": 0, "ReduceMean": 1, "ReduceSumSquare": 2, "ReduceL2": 3, "ReduceMax": 4,
                                                  "ReduceMin": 5, "ReduceL1": 6]

    /// How `b` broadcasts into `out` for the binary kernels: (0, 0) same shape, (1, 1) a
    /// scalar, (C, inner) a run of consecutive axes of `out` (C elements, a channel vector or
    /// a position embedding) with `inner` elements after it; nil otherwise.
    static func broadcastPattern(_ b: [Int], into out: [Int]) -> (period: Int, inner: Int)? {
        if b == out { return (0, 0) }
        if b.reduce(1, *) == 1 { return (1, 1) }
        guard b.count <= out.count else { return nil }
        let padded = Array(repeating: 1, count: out.count - b.count) + b
        let nonOne = padded.indices.filter { padded[$0] != 1 }
        guard let first = nonOne.first, let last = nonOne.last, (first...last).allSatisfy({ padded[$0] == out[$0] }) else { return nil }
        return (padded[first...last].reduce(1, *), out[(last + 1)...].reduce(1, *))
    }

    /// How `b` broadcasts into `out` along two runs of axes, out seen as [pre, A, G, P, inner]
    /// with b [A, 1, P, 1] (sizes of 1 anywhere): pre·A slabs of G·P·inner outputs, slab s
    /// reading b's P values from (s mod A)·P with the (P, inner) pattern; nil otherwise.
    static func slabPattern(_ b: [Int], into out: [Int]) -> (slabs: Int, slabPeriod: Int, period: Int, inner: Int)? {
        guard b.count <= out.count else { return nil }
        let padded = Array(repeating: 1, count: out.count - b.count) + b
        guard zip(padded, out).allSatisfy({ $0 == $1 || $0 == 1 }) else { return nil }
        var runs: [[Int]] = []
        for i in padded.indices where padded[i] != 1 {
            if let last = runs.last?.last, last == i - 1 { runs[runs.count - 1].append(i) } else { runs.append([i]) }
        }
        guard runs.count == 2 else { return nil }
        let product = { (axes: [Int]) in axes.reduce(1) { $0 * out[$1] } }
        let a = product(runs[0])
        return (out[..<runs[0][0]].reduce(1, *) * a, a, product(runs[1]), out[(runs[1].last! + 1)...].reduce(1, *))
    }

    static func activation(_ n: Node) -> Program.Activation {
        func f(_ k: String, _ d: Float) -> Float { if case .float(let v)? = n.attributes[k] { return v }; return d }
        var name = n.op
        if case .string(let a)? = n.attributes["activation"] { name = a }
        guard var kind = activationCodes[name] else { return .none }
        if name == "Gelu", case .string("tanh")? = n.attributes["approximate"] { kind = 7 }
        if name == "QuantizeDequantize" {
            // x rounded to the grid of `scale`, the quantized values less the zero point in [low, high].
            func int(_ k: String) -> Float { if case .int(let v)? = n.attributes[k] { return Float(v) }; return 0 }
            return .init(kind: kind, alpha: f("scale", 1), low: int("qmin") - int("zero_point"), high: int("qmax") - int("zero_point"))
        }
        let defaults = activationParameters(name)
        let alpha: Float = parameterisedActivations.contains(name) ? f("alpha", defaults.alpha) : 0
        let low: Float = name == "Clip" ? f("min", -.greatestFiniteMagnitude) : name == "HardSigmoid" ? f("beta", defaults.beta) : 0
        return .init(kind: kind, alpha: alpha, low: low, high: name == "Clip" ? f("max", .greatestFiniteMagnitude) : 0)
    }

    static func selectKernel(_ n: Node, g: Graph, batch: Int, shapeOf: @escaping (String) -> [Int], constants: [String: TensorData],
                             params: [String: Program.Tensor], outShapes: [[Int]], options: CompileOptions) throws -> Program.Kernel {
        guard let definition = OpRegistry.definition(of: n) else {
            throw CompilerError.lowering("node '\(n.name)': unknown op \(n.qualifiedOp)")
        }
        // The op's definition names its kernel family; the descriptor comes from the shapes
        // (and the reference kernel runs where they do not fit the fast kernel).
        guard case .kernel(let fast) = definition.lowering else { return .reference(n) }
        return try KernelSelection(n: n, g: g, batch: batch, shapeOf: shapeOf, constants: constants, params: params,
                                   out: outShapes.first ?? [], outs: outShapes, options: options).kernel(fast)
    }
}

extension Program.BatchedMatMul {
    /// One thread's scratch for the step, in floats: B of one product packed for the linear
    /// kernel; for attention also V packed (from `value`) and the [m, n] probabilities from
    /// `scores`. The lowering sizes the program's scratch and the executor lays it out by it.
    public var scratchLayout: (value: Int, scores: Int, total: Int) {
        let packed = kiln_linear_packed_size(Int32(k), Int32(n))
        guard let v = value else { return (packed, packed, packed) }
        let at = (packed + 15) / 16 * 16, scores = at + (kiln_linear_packed_size(Int32(n), Int32(v.n)) + 15) / 16 * 16
        return (at, scores, scores + m * n)
    }
}
