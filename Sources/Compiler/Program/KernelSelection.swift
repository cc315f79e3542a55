import CKernels
import Graph

extension Lowering {
    /// The descriptor of one node's compiled kernel, from its shapes, constants and
    /// parameters (Lowering.selectKernel): one method per kernel family of FastKernel. A
    /// method returns `.reference(n)` where the shapes do not fit its kernel.
    struct KernelSelection {
        let n: Node
        let g: Graph
        let batch: Int
        let shapeOf: (String) -> [Int]
        let constants: [String: TensorData]
        let params: [String: Program.Tensor]
        let out: [Int]
        /// Every output's shape (out is the first).
        let outs: [[Int]]
        let options: CompileOptions
        var op: String { n.domain.isEmpty ? n.op : "\(n.domain).\(n.op)" }

            func ints(_ k: String) -> [Int]? { if case .ints(let v)? = n.attributes[k] { return v }; return nil }
            func int(_ k: String, _ d: Int) -> Int { n.intAttribute(k, d) }
            func float(_ k: String, _ d: Float) -> Float { n.floatAttribute(k, d) }
            func string(_ k: String) -> String { if case .string(let v)? = n.attributes[k] { return v }; return "" }
            /// The forward convolution's descriptor, from x's and w's shapes (one group, 2-D).
            func convGeometry(x: [Int], w: [Int]) throws -> Program.Conv? {
                guard x.count == 4, w.count == 4, int("group", 1) == 1 else { return nil }
                let geometry = try WindowGeometry.resolve(input: [x[2], x[3]], kernel: [w[2], w[3]], strides: ints("strides"),
                                                          dilations: ints("dilations"), pads: ints("pads"),
                                                          autoPad: string("auto_pad").isEmpty ? "NOTSET" : string("auto_pad"), ceilMode: false)
                return Program.Conv(
                    algorithm: .im2col, channels: x[1], height: x[2], width: x[3], outChannels: w[0],
                    outHeight: geometry.output[0], outWidth: geometry.output[1], kernelH: w[2], kernelW: w[3],
                    strideH: geometry.strides[0], strideW: geometry.strides[1], padTop: geometry.padsBegin[0], padLeft: geometry.padsBegin[1],
                    padBottom: geometry.padsEnd[0], padRight: geometry.padsEnd[1],
                    dilationH: geometry.dilations[0], dilationW: geometry.dilations[1], group: 1, activation: .none)
            }

        /// The kernel of family `fast` for this node.
        func kernel(_ fast: FastKernel) throws -> Program.Kernel {
            switch fast {
            case .convGradData, .convGradWeight, .convGradBias, .batchNormTraining, .batchNormGrad, .reluGrad, .globalAveragePoolGrad,
                 .scatter, .sgd:
                return try training(fast)
            case .conv: return try convolution()
            case .gemm, .matMul, .linear: return try product(fast)
            case .pool, .globalAveragePool: return try pool(fast)
            case .activation, .clip, .binary, .sum, .batchNormInference, .softmax, .elementwiseChain: return try elementwise(fast)
            case .reduce: return reduction()
            case .layerNorm where n.op == "InstanceNormalization" || n.op == "GroupNormalization":
                // Scale and B per channel ([C]; GroupNormalization-18's per-group form of
                // another length stays on the reference kernel).
                let x = shapeOf(n.inputs[0]), c = x[1]
                let groups = n.op == "InstanceNormalization" ? c : int("num_groups", 1)
                guard groups > 0, c % groups == 0, n.inputs[1...2].allSatisfy({ shapeOf($0) == [c] }) else { return .reference(n) }
                return .groupNorm(rows: x[0] * groups, groups: groups, perGroup: c / groups, inner: x[2...].reduce(1, *), epsilon: float("epsilon", 1e-5))
            case .layerNorm:
                // The rows after `axis` normalised; Scale (and B) exactly that long, f32, and no
                // Mean or InvStdDev read.
                let x = shapeOf(n.inputs[0])
                let axis = int("axis", -1) < 0 ? int("axis", -1) + x.count : int("axis", -1)
                let size = x[axis...].reduce(1, *)
                guard n.outputs.dropFirst().allSatisfy({ $0.name.isEmpty }), n.inputs.dropFirst().allSatisfy({ $0.isEmpty || shapeOf($0).reduce(1, *) == size })
                else { return .reference(n) }
                return .layerNorm(rows: x[..<axis].reduce(1, *), size: size, epsilon: float("epsilon", 1e-5))
            case .dataMovement, .concat, .split: return try movement(fast)
            }
        }

        /// The training step's kernels: convolution gradients, BatchNorm forward and backward, ReLU's and the global pool's gradients, scatters, SGD.
        func training(_ fast: FastKernel) throws -> Program.Kernel {
            switch fast {
            case .convGradData:
                // Per thread: the columns Wᵀ·dy of one image.
                guard var c = try convGeometry(x: shapeOf(n.inputs[2]), w: shapeOf(n.inputs[1])) else { return .reference(n) }
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
                                     activation: .none)
                }
                c.scratch = c.plannedScratch(KILN_CONV_GRAD_DATA, batch: batch)
                return .convGradData(c)
            case .convGradWeight:
                // Per thread: a dW accumulator, and the patches and dy of a group of images side by
                // side (so each dot product runs over at least ~512 positions).
                guard var c = try convGeometry(x: shapeOf(n.inputs[0]), w: shapeOf(n.inputs[2])) else { return .reference(n) }
                if c.kernelH == 3, c.kernelW == 3, c.strideH == 1, c.strideW == 1, c.dilationH == 1, c.dilationW == 1,
                   c.channels % 8 == 0, c.outChannels % 8 == 0, options.winograd != false {
                    // 3×3 stride 1: Winograd F(2×2, 3×3) in the weights too (16 products per tile
                    // summed over tiles instead of 36 per output pair of positions), one
                    // accumulator dU per thread and then dW.
                    c.algorithm = .winograd
                } else if c.strideH == 1, c.strideW == 1, c.dilationH == 1, c.dilationW == 1 {
                    // Stride 1: no patches at all — the image zero-padded once and dy on the same
                    // grid, every tap a shifted row (algorithm "direct_shift", as in the forward).
                    c.algorithm = .direct
                }
                c.scratch = c.plannedScratch(KILN_CONV_GRAD_WEIGHT, batch: batch)
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
            default: preconditionFailure("\(fast) is not one of training's kernels")
            }
        }

        /// Conv and kiln.FusedConv: the algorithm chosen by select-algorithms, the epilogue, the scratch.
        func convolution() throws -> Program.Kernel {
                let x = shapeOf(n.inputs[0]), w = shapeOf(n.inputs[1])
                guard x.count == 4 else { return .reference(n) }
                let geometry = try WindowGeometry.resolve(input: [x[2], x[3]], kernel: [w[2], w[3]], strides: ints("strides"),
                                                          dilations: ints("dilations"), pads: ints("pads"),
                                                          autoPad: string("auto_pad").isEmpty ? "NOTSET" : string("auto_pad"), ceilMode: false)
                let group = int("group", 1)
                var algorithm = ConvAlgorithm(rawValue: string("algorithm")) ?? chooseConvAlgorithm(n, g, winograd: options.winograd, stridedDirect: options.stridedDirect)
                let int8 = algorithm == .int8 ? int8InputQuantization(of: n, g) : nil
                if algorithm == .int8 && int8 == nil || algorithm == .bf16 && !bf16Eligible(n, g) {
                    algorithm = chooseConvAlgorithm(n, g, winograd: options.winograd, stridedDirect: options.stridedDirect)
                }
                var c = Program.Conv(
                    algorithm: algorithm, channels: x[1], height: x[2], width: x[3], outChannels: w[0],
                    outHeight: geometry.output[0], outWidth: geometry.output[1], kernelH: w[2], kernelW: w[3],
                    strideH: geometry.strides[0], strideW: geometry.strides[1], padTop: geometry.padsBegin[0], padLeft: geometry.padsBegin[1],
                    padBottom: geometry.padsEnd[0], padRight: geometry.padsEnd[1],
                    dilationH: geometry.dilations[0], dilationW: geometry.dilations[1], group: group,
                    activation: op == "Conv" ? .none : activation(n))
                c.int8 = int8
                c.scratch = c.plannedScratch(KILN_CONV_FORWARD, batch: batch)
                if group == 1, algorithm == .im2col || algorithm == .gemm1x1 {
                    if c.outChannels % 8 != 0 {
                        c.remainder = c.scratch.total
                        c.scratch.total += 8 * c.outHeight * c.outWidth
                    }
                    c.pack = c.scratch.total
                    c.scratch.total += x[1] * w[2] * w[3] * 24 + 8
                }
                return .conv(c)
        }

        /// Gemm, kiln.FusedGemm and MatMul of rank 2.
        func product(_ fast: FastKernel) throws -> Program.Kernel {
            switch fast {
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
                let alpha = float(op == "Gemm" ? "alpha" : "alpha_gemm", 1), beta = float("beta", 1)
                let act: Program.Activation = op == "Gemm" ? .none : activation(n)
                // A constant weight (a classifier head, PyTorch's Linear with B transposed) and at
                // most a bias per column: the packed linear kernel, which splits its column panels
                // over threads even for one row (a batch-1 head is a matrix–vector product).
                if !transA && alpha == 1 && (mode == 0 || (mode == 1 && beta == 1)) && params[n.inputs[1]] != nil && b.count == 2 {
                    return .linear(Program.Linear(rows: m, k: k, n: nn, transposed: transB, activation: act))
                }
                return .gemm(Program.Gemm(m: m, n: nn, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                                          biasMode: mode, activation: act))
            case .linear:
                let a = shapeOf(n.inputs[0]), b = shapeOf(n.inputs[1])
                return .linear(Program.Linear(rows: a.dropLast().reduce(1, *), k: b[0], n: b[1], transposed: false, activation: activation(n)))
            case .matMul where n.op == "MatMulTransB":
                let a = shapeOf(n.inputs[0]), b = shapeOf(n.inputs[1])
                let swapped = Array(b.dropLast(2)) + [b[b.count - 1], b[b.count - 2]]
                guard case .batchedMatMul(var p) = batchedMatMul(a, swapped) else { return .reference(n) }
                p.transB = true
                p.alpha = float("alpha", 1)
                return .batchedMatMul(p)
            case .matMul:
                let a = shapeOf(n.inputs[0]), b = shapeOf(n.inputs[1])
                // By a constant matrix: the packed linear kernel, every leading axis of x as rows.
                if a.count >= 2, b.count == 2, params[n.inputs[1]] != nil {
                    return .linear(Program.Linear(rows: a.dropLast().reduce(1, *), k: b[0], n: b[1], transposed: false, activation: .none))
                }
                guard a.count == 2, b.count == 2 else { return batchedMatMul(a, b) }
                return .gemm(Program.Gemm(m: a[0], n: b[1], k: a[1], transA: false, transB: false, alpha: 1, beta: 0, biasMode: 0, activation: .none))
            default: preconditionFailure("\(fast) is not one of product's kernels")
            }
        }

        /// numpy's matmul of a [..., m, k] and b [..., k, n] (a 1-D a is [1, k], a 1-D b [k, 1]):
        /// the batch dimensions broadcast, each output batch element one product.
        func batchedMatMul(_ a: [Int], _ b: [Int]) -> Program.Kernel {
            guard !a.isEmpty, !b.isEmpty else { return .reference(n) }
            let sa = a.count == 1 ? [1] + a : a, sb = b.count == 1 ? b + [1] : b
            let (m, k, nn) = (sa[sa.count - 2], sa[sa.count - 1], sb[sb.count - 1])
            guard sb[sb.count - 2] == k else { return .reference(n) }
            let batchA = Array(sa.dropLast(2)), batchB = Array(sb.dropLast(2))
            let rank = max(batchA.count, batchB.count)
            let pa = Array(repeating: 1, count: rank - batchA.count) + batchA, pb = Array(repeating: 1, count: rank - batchB.count) + batchB
            let batch = zip(pa, pb).map { max($0, $1) }
            func offsets(_ dims: [Int], matrix: Int) -> [Int] {
                // Row-major strides of the operand's batch dimensions, 0 where it broadcasts.
                var strides = Array(repeating: 0, count: rank), s = matrix
                for d in (0..<rank).reversed() {
                    strides[d] = dims[d] == 1 ? 0 : s
                    s *= dims[d]
                }
                var out: [Int] = [], index = Array(repeating: 0, count: rank)
                for _ in 0..<batch.reduce(1, *) {
                    out.append(zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 })
                    var d = rank - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < batch[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
                return out
            }
            return .batchedMatMul(Program.BatchedMatMul(m: m, n: nn, k: k, aOffsets: offsets(pa, matrix: m * k), bOffsets: offsets(pb, matrix: k * nn)))
        }

        /// Max and average pools over 2-D windows, the global average pool.
        func pool(_ fast: FastKernel) throws -> Program.Kernel {
            switch fast {
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
            default: preconditionFailure("\(fast) is not one of pool's kernels")
            }
        }

        /// Activations, Clip, broadcast arithmetic, the gradient Sum, inference BatchNorm, softmax on the last axis, fused chains.
        func elementwise(_ fast: FastKernel) throws -> Program.Kernel {
            switch fast {
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
                guard shapeOf(n.inputs[0]) == out else { return .reference(n) }
                if let (period, inner) = broadcastPattern(shapeOf(n.inputs[1]), into: out) {
                    return .binary(op: arithmeticCodes[n.op]!, period: period, inner: inner)
                }
                guard let s = slabPattern(shapeOf(n.inputs[1]), into: out) else { return .reference(n) }
                return .binary(op: arithmeticCodes[n.op]!, period: s.period, inner: s.inner, slabs: s.slabs, slabPeriod: s.slabPeriod)
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
            case .softmax:
                let axis = int("axis", -1) < 0 ? int("axis", -1) + out.count : int("axis", -1)
                guard out.indices.contains(axis) else { return .reference(n) }
                return .softmax(log: n.op == "LogSoftmax", outer: out[..<axis].reduce(1, *), length: out[axis], inner: out[(axis + 1)...].reduce(1, *))
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
            default: preconditionFailure("\(fast) is not one of elementwise's kernels")
            }
        }

        /// ReduceSum/Mean/SumSquare/L2/Max/Min/L1 of f32 values over a run of consecutive
        /// axes (axes of size 1 aside) as [outer, length, inner]; others on the reference kernel.
        func reduction() -> Program.Kernel {
            let x = shapeOf(n.inputs[0])
            guard let kind = reductionCodes[n.op], n.outputs[0].type.dtype == .f32 else { return .reference(n) }
            let axes = Set((ints("axes") ?? Array(x.indices)).map { $0 < 0 ? $0 + x.count : $0 }).filter { x.indices.contains($0) && x[$0] != 1 }
            guard let first = axes.min(), let last = axes.max() else {
                return .reduce(kind: kind, outer: x.reduce(1, *), length: 1, inner: 1)  // nothing reduced but sizes of 1
            }
            guard (first...last).allSatisfy({ axes.contains($0) || x[$0] == 1 }) else { return .reference(n) }
            return .reduce(kind: kind, outer: x[..<first].reduce(1, *), length: x[first...last].reduce(1, *), inner: x[(last + 1)...].reduce(1, *))
        }

        /// Slice, Transpose, Pad, Gather as index maps; Concat.
        func movement(_ fast: FastKernel) throws -> Program.Kernel {
            switch fast {
            case .dataMovement:
                switch n.op {
                case "Pad":
                    // The fill value must be known when the index map is built.
                    let fillKnown = n.inputs.count < 3 || n.inputs[2].isEmpty || params[n.inputs[2]] != nil
                    return fillKnown ? .dataMovement(n) : .reference(n)
                case "Resize":
                    // Nearest resizing copies: an index map (tf_crop_and_resize's extrapolated
                    // value is not an index; linear and cubic weigh several inputs).
                    let nearest = (n.attributes["mode"] ?? .string("nearest")) == .string("nearest")
                        && n.attributes["coordinate_transformation_mode"] != .string("tf_crop_and_resize")
                    return nearest && n.inputs.dropFirst().allSatisfy({ $0.isEmpty || params[$0] != nil || constants[$0] != nil })
                        ? .dataMovement(n) : .reference(n)
                case "Gather", "GatherND":
                    return constants[n.inputs[1]] != nil || params[n.inputs[1]] != nil ? .dataMovement(n) : .reference(n)
                case "Expand", "Tile":
                    // The map is built once: the shape (or repeats) must be known.
                    return constants[n.inputs[1]] != nil || params[n.inputs[1]] != nil ? .dataMovement(n) : .reference(n)
                default:
                    return .dataMovement(n)  // Slice, Transpose
                }
            case .concat:
                return .concat(axis: int("axis", 0) < 0 ? int("axis", 0) + out.count : int("axis", 0))
            case .split:
                let x = shapeOf(n.inputs[0])
                let axis = int("axis", 0) < 0 ? int("axis", 0) + x.count : int("axis", 0)
                guard n.outputs.allSatisfy({ !$0.name.isEmpty }) else { return .reference(n) }
                return .split(outer: x[..<axis].reduce(1, *), sizes: outs.map { $0[axis...].reduce(1, *) })
            default: preconditionFailure("\(fast) is not one of movement's kernels")
            }
        }
    }
}
