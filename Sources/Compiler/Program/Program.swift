import Graph

/// The lowered form of a graph for one batch size: an ordered list of kernel calls over one
/// arena, with every weight in one parameter buffer. Self-contained: every step's descriptor
/// holds what its kernel needs, and nothing at run time looks back into the graph.
public struct Program: Sendable {
    /// Where a value lives: `byteOffset` bytes into the arena or the parameter buffer, its
    /// elements of type `storage` there.
    public struct Tensor: Sendable, Equatable {
        public var byteOffset: Int
        public var shape: [Int]
        public var inParameters: Bool
        /// The element type in memory. Every value is f32 today: integer and bool values
        /// (labels, dropout masks) are held as floats, exact below 2^24.
        public var storage: DType
        /// The element type the value has in the graph.
        public var dtype: DType
        public var count: Int { shape.reduce(1, *) }
        public var byteCount: Int { count * storage.byteSize }

        public init(byteOffset: Int, shape: [Int], inParameters: Bool, storage: DType, dtype: DType = .f32) {
            self.byteOffset = byteOffset
            self.shape = shape
            self.inParameters = inParameters
            self.storage = storage
            self.dtype = dtype
        }
    }

    /// One planned storage of the arena: its byte range and the steps it is live through
    /// (from −1 for graph inputs; to `steps.count` for outputs and inputs).
    public struct Storage: Sendable, Equatable {
        public var byteOffset: Int
        public var bytes: Int
        public var firstStep: Int
        public var lastStep: Int
    }

    /// An input of a step: a tensor, a compile-time constant (integer shapes, …), or absent.
    public enum Operand: Sendable {
        case tensor(Tensor)
        case constant(TensorData)
        case none

        public var tensor: Tensor? { if case .tensor(let t) = self { return t }; return nil }
    }

    public struct Activation: Sendable, Equatable {
        /// kiln_activation: 0 none, 1 relu, 2 leaky relu, 3 clip, 4 sigmoid, 5 hardswish.
        public var kind: Int32
        public var alpha: Float
        public var low: Float
        public var high: Float
        public static let none = Activation(kind: 0, alpha: 0, low: 0, high: 0)
    }

    public struct Conv: Sendable {
        public var algorithm: ConvAlgorithm
        public var channels: Int, height: Int, width: Int
        public var outChannels: Int, outHeight: Int, outWidth: Int
        public var kernelH: Int, kernelW: Int, strideH: Int, strideW: Int
        public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int, dilationH: Int, dilationW: Int
        public var group: Int
        public var activation: Activation
        /// Per-thread scratch, as the kernel defines it (kiln_conv_scratch).
        public var scratch: Scratch = .none
        /// A 1×1 convolution computed band by band inside the next step (the depthwise
        /// convolution that is its only reader): its own step does nothing.
        public var deferred: Bool = false
        /// A depthwise convolution fused with the 1×1 convolution before it (MobileNet's
        /// expansion): see Expand.
        public var expand: Expand? = nil
        /// A 1×1 convolution of x ⊙ s (squeeze-and-excitation's channel gate s [N, C, 1, 1],
        /// the step's fifth input) computed as (W ⊙ sᵀ) · x: per image, the packed weight with
        /// its columns scaled goes to the thread's scratch from this float offset.
        public var gate: Int? = nil
        /// Output channels past the last whole block of 8 (rexNet's 162, 228, …): the packed
        /// kernel makes that block into the thread's scratch from this float offset (8 rows of
        /// the columns it computes), and the valid rows are copied out with the epilogue.
        public var remainder: Int? = nil
        /// Where the packed kernel copies B's column chunks (K·24 + 8 floats) in the thread's
        /// scratch, so that every block of output channels after the first reads them
        /// contiguous and aligned (conv_gemm_ld's `pack`).
        public var pack: Int? = nil
        /// The int8 kernel's input quantization (algorithm int8).
        public var int8: Int8Input? = nil
    }

    /// The 1×1 → depthwise pair in one step: the 1×1 (step `step`, whose kernel, packed weight
    /// and bias this step uses) computes `capacityRows` rows of its [C, H, W] output at a time into the
    /// thread's scratch from float `offset` on (planes `capacityRows · W` apart), keeping the
    /// rows the next band shares, and the depthwise kernel makes `bandRows` output rows from
    /// them — the expanded tensor never reaches memory.
    public struct Expand: Sendable {
        public var step: Int
        public var bandRows: Int, capacityRows: Int
        public var offset: Int
    }

    /// A kernel's per-thread scratch in floats: the total and where its parts start, and the
    /// images a weight-gradient worker takes at once (kiln_scratch_layout).
    public struct Scratch: Sendable, Equatable {
        public var total: Int, second: Int, third: Int, group: Int
        public static let none = Scratch(total: 0, second: 0, third: 0, group: 1)
    }

    public struct Gemm: Sendable {
        public var m: Int, n: Int, k: Int
        public var transA: Bool, transB: Bool
        public var alpha: Float, beta: Float
        /// How C broadcasts: 0 none, 1 per column [N], 2 per row [M, 1], 3 full [M, N], 4 scalar.
        public var biasMode: Int
        public var activation: Activation
    }

    /// x [rows, k] · W [k, n] (W constant, packed in column panels at load; stored [n, k]
    /// when `transposed`) with the epilogue act(· + bias + residual): inputs x, W, bias or
    /// none, residual or none.
    public struct Linear: Sendable {
        public var rows: Int, k: Int, n: Int
        public var transposed: Bool
        public var activation: Activation
    }

    public struct BatchedMatMul: Sendable {
        public var m: Int, n: Int, k: Int
        /// B stored [n, k] (kiln.MatMulTransB), and the product's scale.
        public var transB: Bool = false
        public var alpha: Float = 1
        /// Per output batch element: where its A and B matrices start (elements).
        public var aOffsets: [Int], bOffsets: [Int]
        /// The Softmax over the product's last axis that followed it (attention's), done on
        /// each product's rows while they are in cache, into the step's second output.
        public var softmax: Bool = false
        /// Attention's whole softmax(α·A·Bᵀ)·V when the scores and probabilities have no other
        /// reader: each product's [m, n] probabilities, computed in the thread's scratch, times
        /// V's [n, value.n] matrix at `value.bOffsets[i]` of the step's third input, into the
        /// step's only output; the scores never reach memory.
        public var value: Value? = nil
        public struct Value: Sendable {
            public var n: Int
            public var bOffsets: [Int]
        }
    }

    public struct Pool: Sendable {
        public var isMax: Bool
        public var height: Int, width: Int, outHeight: Int, outWidth: Int
        public var kernelH: Int, kernelW: Int, strideH: Int, strideW: Int
        public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
        public var dilationH: Int, dilationW: Int
        public var includePad: Bool
    }

    public enum Kernel: Sendable {
        case conv(Conv)
        case gemm(Gemm)
        case linear(Linear)
        /// MatMul of operands of rank other than 2: one [m, k] · [k, n] product per output batch
        /// element, its operands' batch offsets broadcast (numpy's rules).
        case batchedMatMul(BatchedMatMul)
        case pool(Pool)
        case globalAveragePool(planes: Int, size: Int)
        case activation(Activation)
        /// op 0 add, 1 sub, 2 mul, 3 div; b repeats with `period` values each `inner` times (0: same shape).
        /// With `slabs` > 1 the output is that many equal slabs, slab s reading b from
        /// (s mod slabPeriod)·period (b broadcast along two runs of axes: Swin's window masks).
        case binary(op: Int32, period: Int, inner: Int, slabs: Int = 1, slabPeriod: Int = 1)
        /// Inference BatchNormalization: y = x·scale + shift per channel, from the four
        /// parameter inputs and epsilon.
        case scaleShift(channels: Int, inner: Int, epsilon: Double)
        /// LayerNormalization over the last `size` values of each of `rows` runs (Scale and B
        /// of exactly that size; the optional Mean and InvStdDev outputs unused).
        case layerNorm(rows: Int, size: Int, epsilon: Float)
        /// InstanceNormalization (perGroup 1) and GroupNormalization: `rows` (images ×
        /// groups) runs of perGroup channels of `inner` values, each run normalised, then
        /// per channel × Scale + B (both [C]).
        case groupNorm(rows: Int, groups: Int, perGroup: Int, inner: Int, epsilon: Float)
        /// Slice, Pad, Transpose, Gather with constant indices: output[k] = input[map[k]] or
        /// the fill value; the runtime derives the map once from the reference kernel.
        case dataMovement(Node)
        case concat(axis: Int)
        /// Split: per outer index (the elements before the axis), output k takes the next
        /// `sizes[k]` contiguous values.
        case split(outer: Int, sizes: [Int])
        /// Softmax over the middle axis of [outer, length, inner] (inner 1: the last axis).
        case softmax(log: Bool, outer: Int, length: Int, inner: Int)
        /// A reduction (kiln_reduce: sum, mean, sum of squares, L2, max, min, L1) over the
        /// middle axis of [outer, length, inner] — a run of consecutive axes of the input.
        case reduce(kind: Int32, outer: Int, length: Int, inner: Int)
        /// A fused elementwise chain, one pass over memory.
        case elementwiseChain([ElementwiseOp])
        /// Runs the reference kernel of the node (ops without a fast kernel).
        case reference(Node)
        /// Training: Conv's data gradient (Wᵀ·dy per image, then col2im) or weight gradient
        /// (dy·im2col(x)ᵀ summed over images); the geometry is the forward convolution's.
        case convGradData(Conv)
        case convGradWeight(Conv)
        /// Sum over every axis but 1 of [N, C, inner] (Conv's bias gradient).
        case channelSum(channels: Int, inner: Int)
        case batchNormTraining(channels: Int, inner: Int, epsilon: Float, momentum: Float, relu: Bool)
        case batchNormGrad(channels: Int, inner: Int)
        case reluGrad
        case globalAveragePoolGrad(planes: Int, size: Int)
        /// SliceGrad / PadGrad: dy added back where the forward op read it (the forward map).
        case scatter(Node)
        case sgd(momentum: Float, weightDecay: Float, nesterov: Bool)

        public var name: String {
            switch self {
            case .conv(let c) where c.deferred: return "conv/\(c.algorithm.rawValue)→next"
            case .conv(let c) where c.expand != nil: return "conv/1x1+\(c.algorithm.rawValue)"
            case .conv(let c) where c.gate != nil: return "conv/gate+\(c.algorithm.rawValue)"
            case .conv(let c): return "conv/\(c.algorithm.rawValue)"
            case .gemm: return "gemm/sgemm"
            case .linear: return "linear/packed"
            case .batchedMatMul(let b):
                if b.value != nil { return "attention×\(b.aOffsets.count)" }
                return "matmul/batched×\(b.aOffsets.count)\(b.softmax ? "+softmax" : "")"
            case .pool(let p): return p.isMax ? "maxpool2d" : "avgpool2d"
            case .globalAveragePool: return "global-avgpool"
            case .activation: return "activation"
            case .binary: return "binary"
            case .scaleShift: return "scale-shift"
            case .layerNorm: return "layernorm"
            case .groupNorm: return "groupnorm"
            case .dataMovement: return "gather-map"
            case .convGradData: return "conv-grad/data"
            case .convGradWeight: return "conv-grad/weight"
            case .channelSum: return "channel-sum"
            case .batchNormTraining: return "batchnorm-train"
            case .batchNormGrad: return "batchnorm-grad"
            case .reluGrad: return "relu-grad"
            case .globalAveragePoolGrad: return "global-avgpool-grad"
            case .scatter: return "scatter-map"
            case .sgd: return "sgd"
            case .concat: return "concat"
            case .split: return "split"
            case .softmax: return "softmax"
            case .reduce: return "reduce"
            case .elementwiseChain: return "elementwise-chain"
            case .reference: return "reference"
            }
        }
    }

    /// One op of a fused chain: kind 0–3 add/sub/mul/div with `operand` (an input index of
    /// the step) broadcast by period/inner; 10 + activation code for activations.
    public struct ElementwiseOp: Sendable {
        public var kind: Int32
        public var swap: Bool
        public var operand: Int
        public var period: Int
        public var inner: Int
        public var activation: Activation
    }

    public struct Step: Sendable {
        public var name: String
        public var op: String
        public var kernel: Kernel
        public var inputs: [Operand]
        public var outputs: [Tensor]
        public var flops: Int
    }

    public struct ParameterSlot: Sendable {
        public var name: String
        /// Offset in bytes (a multiple of 64) in the parameter buffer.
        public var byteOffset: Int
        public var data: TensorData

        public init(name: String, byteOffset: Int, data: TensorData) {
            self.name = name
            self.byteOffset = byteOffset
            self.data = data
        }
    }

    public struct Binding: Sendable {
        public var name: String
        public var tensor: Tensor
    }

    public var batch: Int
    public var steps: [Step]
    /// Arena size in bytes.
    public var arenaBytes: Int
    /// The planned storages (ArenaPlanner): no two live at one step overlap.
    public var storages: [Storage]
    /// Where each f32 parameter goes in the parameter buffer. The values stay in the graph's
    /// tensors (shared, not copied) until the runtime fills its buffer, so a model's weights
    /// are not held one extra time by the program.
    public var parameters: [ParameterSlot]
    /// Size of the parameter buffer in bytes (kept when `parameters` is released).
    public var parameterBytes: Int
    public var inputs: [Binding]
    public var outputs: [Binding]
    /// Largest per-thread scratch any step needs, in floats.
    public var scratchCount: Int

    /// The kernel list as `kiln dump --program` prints it.
    public var listing: String {
        func loc(_ t: Tensor) -> String { (t.inParameters ? "param" : "arena") + "[\(t.byteOffset)..<\(t.byteOffset + t.byteCount)] \(t.storage)" }
        var lines = ["program: batch \(batch), \(steps.count) steps, arena \(arenaBytes) bytes, parameters \(parameterBytes) bytes, scratch \(scratchCount * 4) bytes per thread"]
        for (i, s) in steps.enumerated() {
            let ins = s.inputs.map { o -> String in
                switch o {
                case .tensor(let t): return loc(t)
                case .constant(let c): return "const\(c.shape)"
                case .none: return "-"
                }
            }
            lines.append("\(i): \(s.kernel.name) \(s.op) '\(s.name)' layout NCHW in \(ins.joined(separator: ", ")) out \(s.outputs.map(loc).joined(separator: ", ")) \(s.outputs.first?.shape ?? [])")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
