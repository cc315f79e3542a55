import CBLAS
import CKernels
import Compiler
import Dispatch
import Foundation
import Graph

/// Raw pointers handed to worker threads (the executor guarantees disjoint writes).
struct Shared<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
}

/// What a pool task needs: the body and how the items split.
private struct ChunkJob {
    let body: (Int, Range<Int>) -> Void
    let count: Int
    let workers: Int
}

/// Runs `body(worker, range)` over `count` items split into `workers` contiguous chunks on
/// `pool` (the caller runs one chunk itself); `worker` is in 0..<workers.
/// `body(lo, hi)` over the elements [0, n) in blocks of `block`, the blocks split across
/// `workers` threads.
func parallelRanges(_ n: Int, block: Int, workers: Int, pool: OpaquePointer?, _ body: (Int, Int) -> Void) {
    parallelChunks((n + block - 1) / block, workers: workers, pool: pool) { _, r in
        let lo = r.lowerBound * block, hi = min(n, r.upperBound * block)
        if hi > lo { body(lo, hi) }
    }
}

func parallelChunks(_ count: Int, workers: Int, pool: OpaquePointer?, _ body: (Int, Range<Int>) -> Void) {
    let w = max(1, min(workers, count))
    guard w > 1, let pool else { body(0, 0..<count); return }
    withoutActuallyEscaping(body) { b in
        var job = ChunkJob(body: b, count: count, workers: w)
        withUnsafeMutablePointer(to: &job) { ptr in
            kiln_pool_run(pool, Int32(w), { raw, task in
                let job = raw!.assumingMemoryBound(to: ChunkJob.self).pointee
                let i = Int(task)
                job.body(i, (job.count * i / job.workers)..<(job.count * (i + 1) / job.workers))
            }, ptr)
        }
    }
}

/// Zeroed floats at a 64-byte (cache line, AVX-512 vector) boundary. Large buffers come
/// straight from mmap, whose pages are zero and take no memory until written, so parts that
/// are never written (weights that only exist packed, say) never count toward RSS.
func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    if bytes >= mappedThreshold {
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            fatalError("out of memory: cannot map \(bytes) bytes")
        }
        return p.bindMemory(to: Float.self, capacity: max(count, 1))
    }
    let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    memset(p, 0, bytes)
    return p.bindMemory(to: Float.self, capacity: max(count, 1))
}

/// Releases what `alignedFloats(count)` returned.
func freeAlignedFloats(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    if bytes >= mappedThreshold { munmap(p, bytes) } else { p.deallocate() }
}

private let mappedThreshold = 1 << 18

/// A value (usually a pointer) handed to concurrently running closures that write disjoint
/// parts of what it points to.
public struct UnsafeSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ v: T) { value = v }
}

/// A graph compiled for one batch size: the program, its arena, packed weights and per-thread
/// scratch, ready to run repeatedly without allocating.
public final class CompiledModel: @unchecked Sendable {
    /// The program; its `parameters` are moved into this model's buffer and emptied.
    public private(set) var program: Program
    /// The specialised graph, without weight values (they live in the parameter buffer).
    public let graph: Graph
    public let threads: Int
    let arena: UnsafeMutablePointer<Float>
    let params: UnsafeMutablePointer<Float>
    let scratch: [UnsafeMutablePointer<Float>]
    /// Worker threads (threads − 1 of them; the caller is the last).
    let pool: OpaquePointer?
    /// Per step: index maps (data movement) and BatchNorm scale/shift, built once.
    var maps: [Int: [Int32]] = [:]
    /// Per gather-map step: the length of the contiguous runs its map is made of (the map
    /// then holds one entry per run; 1: element by element).
    var runLengths: [Int: Int] = [:]
    var fills: [Int: Float] = [:]
    var scaleShift: [Int: [Float]] = [:]
    /// Per step: the forward index map a SliceGrad / PadGrad scatters through.
    var scatterMaps: [Int: [Int32]] = [:]
    /// Per step: weights repacked for the direct and Winograd kernels, all in one buffer.
    var packedWeights: [Int: UnsafeMutablePointer<Float>] = [:]
    /// int8 steps whose weights are no longer on an int8 grid (set from outside since the compile).
    var int8Unpackable = Set<Int>()
    var packedBuffer: UnsafeMutablePointer<Float>?
    /// Per Winograd step: the sign (1, −1, 0) of every weight [M, C, 3, 3], all that the
    /// non-finite-input path needs of the weights that only exist transformed.
    var winogradSigns: [Int: [Int8]] = [:]
    var packedCount = 0
    /// Per step that updates a weight in place (SGD): the steps whose packed copy of it the
    /// update repacks at once.
    var repackAfter: [[Int]] = []
    /// Every f32 parameter's place in the parameter buffer, by name.
    public private(set) var parameterTensors: [String: Program.Tensor] = [:]
    /// Parameters in the buffer (others exist only packed).
    var resident = Set<String>()
    /// The passes the model was compiled with (refresh runs them again on new values).
    var pipeline: [Pass] = []
    /// The model whose parameter buffer this one runs on (kept alive while this one is).
    let owner: CompiledModel?
    /// A data-parallel training step's job: BatchNorm statistics are the job's (partial sums
    /// reduced across ranks), and the gradients the SGD steps read are summed across ranks
    /// first (see CompiledModel+Distributed.swift). Nil, or one rank: the local computation.
    public var cluster: Cluster?
    /// Whether this rank's images count in the job's batch (false for a rank whose share of a
    /// small batch is empty and runs a placeholder image that contributes nothing).
    public var countsImages = true
    /// The SGD gradients' buckets, reduced across the job while the backward runs (made at
    /// the first distributed run).
    var gradientBuckets: GradientBuckets?

    /// Runs the inference passes, binds the batch, lowers and allocates.
    /// `passes` replaces the pipeline (a training step's, say); by default the inference
    /// pipeline of `options`.
    /// `sharingParametersWith`: run on that model's parameter buffer instead of one of its own
    /// (the same graph at another batch size; see `init`).
    public static func compile(_ graph: Graph, batch: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                               passes: [Pass]? = nil, options: CompileOptions = .environment,
                               sharingParametersWith owner: CompiledModel? = nil) throws -> CompiledModel {
        var chosen = passes ?? Pass.inferencePipeline(options)
        if passes != nil, let names = options.passes { chosen = chosen.filter { names.contains($0.name) } }
        // Static shapes first, so the passes fold every shape computation (Shape of a batch).
        let optimized = try Pipeline.run(try graph.bound(toBatch: batch), passes: chosen)
        var specialized = try optimized.bound(toBatch: batch)
        // Inference compiles with tuning on: algorithms measured on this CPU (Tuner), unless
        // forced (KILN_WINOGRAD, KILN_STRIDED_DIRECT ask for the heuristic's kind of choice).
        if passes == nil && options.tune && options.winograd == nil && options.stridedDirect == nil {
            specialized = Tuner.shared.tuned(specialized, batch: batch, threads: max(1, threads))
        }
        var program = try Lowering.lower(specialized, batch: batch, options: options)
        // Inputs and outputs keep the graph's element types at the boundary (narrow-floats
        // computes f64, f16 and bf16 values in f32): `run` converts them on the way in and out.
        let declared = Dictionary((graph.inputs + graph.outputs).map { ($0.name, $0.type.dtype) }, uniquingKeysWith: { a, _ in a })
        for i in program.inputs.indices { program.inputs[i].tensor.dtype = declared[program.inputs[i].name] ?? program.inputs[i].tensor.dtype }
        for i in program.outputs.indices { program.outputs[i].tensor.dtype = declared[program.outputs[i].name] ?? program.outputs[i].tensor.dtype }
        let model = try CompiledModel(program: program, graph: specialized, threads: threads, sharingParametersWith: owner)
        model.pipeline = chosen
        return model
    }

    /// With `owner`, the model runs on the owner's parameter buffer (no copy of the weights,
    /// and writes seen by both: a training step's partial last batch and the main step);
    /// the parameter layouts must be the same and every weight resident there. Each model's
    /// packed weights are its own: `repack()` after the other model changed the buffer.
    init(program: Program, graph: Graph, threads: Int, sharingParametersWith owner: CompiledModel? = nil) throws {
        self.program = program
        self.owner = owner
        if let owner {
            let mine = program.parameters.map { ($0.name, $0.byteOffset) }
            guard owner.program.parameterBytes == program.parameterBytes,
                  mine.allSatisfy({ owner.parameterTensors[$0.0]?.byteOffset == $0.1 && owner.resident.contains($0.0) }),
                  mine.count == owner.parameterTensors.count else {
                throw RuntimeError.inputMismatch(name: "parameters", expected: "the layout of the model whose buffer is shared",
                                                 got: "another layout")
            }
        }
        var stripped = graph
        for i in stripped.parameters.indices where stripped.parameters[i].dtype == .f32 && stripped.parameters[i].count > 64 {
            stripped.parameters[i].initializer = .zeros
        }
        self.graph = stripped
        self.threads = max(1, threads)
        arena = alignedFloats(program.arenaBytes / 4)
        params = owner?.params ?? alignedFloats((program.parameterBytes + 3) / 4)
        pool = self.threads > 1 ? kiln_pool_create(Int32(self.threads)) : nil
        let scratchCount = program.scratchCount
        scratch = (0..<max(1, threads)).map { _ in alignedFloats(scratchCount) }
        try prepare()
        // The graph's tensors are released with the program's references to them.
        self.program.parameters = []
    }

    deinit {
        if let pool { kiln_pool_destroy(pool) }
        freeAlignedFloats(arena, program.arenaBytes / 4)
        if owner == nil { freeAlignedFloats(params, (program.parameterBytes + 3) / 4) }
        scratch.forEach { freeAlignedFloats($0, program.scratchCount) }
        if let packedBuffer { freeAlignedFloats(packedBuffer, packedCount) }
    }

    /// Where tensor `t`'s f32 elements live (every value of a program is held as f32).
    func pointer(_ t: Program.Tensor) -> UnsafeMutablePointer<Float> {
        precondition(t.storage == .f32, "a \(t.storage) tensor read as f32")
        return (UnsafeMutableRawPointer(t.inParameters ? params : arena) + t.byteOffset).assumingMemoryBound(to: Float.self)
    }

    /// Where parameter `name`'s values live, when they live in the parameter buffer (weights
    /// that only packed kernels read exist only packed). Writing them takes effect for steps
    /// reading the buffer at once, and for packed kernels after `repack()`.
    public func parameterPointer(_ name: String) -> UnsafeMutablePointer<Float>? {
        guard resident.contains(name), let t = parameterTensors[name] else { return nil }
        return pointer(t)
    }

    /// Where output `name` is written by `execute()`: the whole tensor, `program.batch` images.
    public func outputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        program.outputs.first { $0.name == name }.map { UnsafeMutableBufferPointer(start: pointer($0.tensor), count: $0.tensor.count) }
    }

    func host(_ o: Program.Operand) -> HostTensor? {
        switch o {
        case .none: return nil
        case .constant(let c): return HostTensor(c)
        case .tensor(let t):
            let p = pointer(t)
            if t.dtype.isFloatingPoint { return HostTensor(dtype: t.dtype, shape: t.shape, f: (0..<t.count).map { Double(p[$0]) }) }
            return HostTensor(dtype: t.dtype, shape: t.shape, i: (0..<t.count).map { Int64(p[$0]) })
        }
    }

    /// Step `i`'s map as runs of consecutive source elements (a transpose that keeps the last
    /// axes, a slice of whole rows): the run length is the gcd of where runs break, and the map
    /// keeps each run's start, so the kernel copies runs instead of single elements.
    func compressRuns(_ i: Int) {
        guard let m = maps[i], m.count > 1 else { return }
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        var length = 0
        for k in 1..<m.count where m[k] < 0 || m[k - 1] < 0 || m[k] != m[k - 1] + 1 {
            length = gcd(length, k)
            if length == 1 { return }
        }
        length = length == 0 ? m.count : gcd(length, m.count)
        // Fill runs must be all fill: a run starting below 0 is a fill run throughout.
        guard length >= 4 else { return }
        maps[i] = stride(from: 0, to: m.count, by: length).map { m[$0] }
        runLengths[i] = length
    }

    /// Packed weights, parameter values, index maps from the reference kernel run on element
    /// indices, BatchNorm constants.
    /// Input element of each output element of x [shape] transposed by `perm`.
    static func transposeMap(_ shape: [Int], _ perm: [Int]) -> [Int32] {
        let inStride = strides(shape)
        return stridedOffsets(perm.map { shape[$0] }, steps: perm.map { inStride[$0] }, as: Int32.self)
    }

    func prepare() throws {
        let packedSteps = allocatePackedWeights()
        let source = loadParameters(program.parameters, packedSteps: packedSteps)
        for (i, step) in program.steps.enumerated() { try prepare(step, at: i, source: source) }
        repackAfter = ownersOfPackedWeights(packedSteps)
    }

    /// Parameter values go into the buffer, except weights that only packed kernels read:
    /// those are packed straight from the graph's tensors and their slots stay untouched.
    /// Returns those weights' values by byte offset.
    func loadParameters(_ slots: [Program.ParameterSlot], packedSteps: Set<Int>) -> [Int: TensorData] {
        var packedUse = Set<Int>(), otherUse = Set<Int>()
        for (i, step) in program.steps.enumerated() {
            for (j, operand) in step.inputs.enumerated() {
                guard let t = operand.tensor, t.inParameters else { continue }
                if j == 1 && packedSteps.contains(i) { packedUse.insert(t.byteOffset) } else { otherUse.insert(t.byteOffset) }
            }
        }
        for b in program.outputs where b.tensor.inParameters { otherUse.insert(b.tensor.byteOffset) }
        var source: [Int: TensorData] = [:]
        for slot in slots {
            let slotTensor = Program.Tensor(byteOffset: slot.byteOffset, shape: slot.data.shape, inParameters: true, storage: .f32)
            parameterTensors[slot.name] = slotTensor
            // On a shared buffer every weight is there (the owner holds them all): pack from it.
            if owner != nil { resident.insert(slot.name); continue }
            if packedUse.contains(slot.byteOffset) { source[slot.byteOffset] = slot.data }
            if slot.data.count == 0 || (packedUse.contains(slot.byteOffset) && !otherUse.contains(slot.byteOffset)) { continue }
            resident.insert(slot.name)
            slot.data.bytes.withUnsafeBytes { raw in
                pointer(slotTensor).update(from: raw.bindMemory(to: Float.self).baseAddress!, count: slot.data.count)
            }
        }
        return source
    }

    /// Step `i`'s constants: its packed weights, index maps, BatchNorm scale and shift (only
    /// what depends on the weights' values when `valuesOnly`).
    func prepare(_ step: Program.Step, at i: Int, source: [Int: TensorData], valuesOnly: Bool = false) throws {
        if packedWeights[i] != nil, let w = step.inputs[1].tensor { withPackSource(source, w) { pack(step: i, from: $0) } }
        switch step.kernel {
        case .dataMovement where valuesOnly, .scatter where valuesOnly: return
        case .dataMovement(let node):
            guard let x = step.inputs.first?.tensor, let out = step.outputs.first else { return }
            guard let kernel = OpRegistry.definition(of: node)?.reference else { throw RuntimeError.unsupported(node: node.name, op: node.op) }
            let isTranspose = node.domain.isEmpty && node.op == "Transpose"
            // (A Transpose's map needs none of the inputs' values.)
            var inputs = isTranspose ? [] : step.inputs.map(host)
            if node.op == "Pad" {
                fills[i] = Float(inputs.count > 2 ? inputs[2]?.f.first ?? 0 : 0)
                while inputs.count < 3 { inputs.append(nil) }
                inputs[2] = HostTensor(dtype: .f32, shape: [], f: [-1])
            }
            /// The map for a batch of `n` images: the reference kernel run on element indices.
            /// (The output's first axis is the batch only when it is taken as n images; the
            /// whole input's map keeps the node's own output type: Expand and Tile change it.)
            func map(images n: Int) throws -> [Int32] {
                var ins = inputs
                let shape = [n] + x.shape.dropFirst()
                // A Transpose's map by stride arithmetic: the reference kernel on Doubles took
                // seconds for ViT-B's [197, 16, 768] transposes at batch 16.
                if isTranspose {
                    var perm = Array((0..<shape.count).reversed())
                    if case .ints(let p)? = node.attributes["perm"] { perm = p }
                    guard perm.count == shape.count, Set(perm) == Set(0..<shape.count) else {
                        throw RuntimeError.kernel(node: node.name, op: node.op, message: "perm \(perm) is not a permutation of \(shape.count) axes")
                    }
                    return Self.transposeMap(shape, perm)
                }
                ins[0] = HostTensor(dtype: .f32, shape: shape, f: (0..<shape.reduce(1, *)).map(Double.init))
                var types = node.outputs.map(\.type)
                if n != x.shape.first { types[0].shape[0] = Dim(n) }
                return try kernel(RefContext(node: node, inputs: ins, outputTypes: types))[0].f.map { Int32($0) }
            }
            /// The kernel reads x[map[k]] unchecked: a map must stay inside what it reads.
            func checked(_ m: [Int32], inside count: Int) throws -> [Int32] {
                guard m.allSatisfy({ Int($0) < count }) else {
                    throw RuntimeError.kernel(node: node.name, op: node.op, message: "index map reads outside its input")
                }
                return m
            }
            // Most data movement leaves the batch axis alone: then one image's map serves
            // every image (checked on two images), which keeps compiling large batches cheap.
            let batch = x.shape.first ?? 1
            // (A map that cannot be built for fewer images — indices into the batch axis —
            // takes the whole batch's.)
            if batch > 1, out.shape.first == batch, let one = try? map(images: 1), let two = try? map(images: 2) {
                let inImage = Int32(x.count / batch)
                if two == one + one.map({ $0 < 0 ? $0 : $0 + inImage }) {
                    maps[i] = try checked(one, inside: Int(inImage))
                    compressRuns(i)
                    return
                }
            }
            maps[i] = try checked(map(images: batch), inside: x.count)
            compressRuns(i)
        case .conv(let c) where c.algorithm == .winograd:
            // A Program is plain data: check its plan against the kernel's own size.
            let need = c.plannedScratch(KILN_CONV_FORWARD, batch: program.batch).total
            guard need <= program.scratchCount else {
                throw RuntimeError.kernel(node: step.name, op: step.op, message: "planned scratch \(program.scratchCount) floats, the Winograd kernel needs \(need)")
            }
        case .scatter(let node):
            scatterMaps[i] = try scatterMap(node, step)
        case .scaleShift(let c, _, let eps):
            guard let s = host(step.inputs[1]), let b = host(step.inputs[2]), let m = host(step.inputs[3]), let v = host(step.inputs[4]) else { return }
            var out = [Float](repeating: 0, count: 2 * c)
            for k in 0..<c {
                let a = s.f[k] / (v.f[k] + eps).squareRoot()
                out[k] = Float(a)
                out[c + k] = Float(b.f[k] - m.f[k] * a)
            }
            scaleShift[i] = out
        default: break
        }
    }

    /// Copies inputs in, runs every step, copies outputs out.
    public func run(_ inputs: [String: TensorData]) throws -> [String: TensorData] {
        for b in program.inputs {
            guard let t = inputs[b.name] else { throw RuntimeError.missingInput(b.name) }
            guard t.dtype == b.tensor.dtype, t.shape == b.tensor.shape else {
                throw RuntimeError.inputMismatch(name: b.name, expected: "\(b.tensor.dtype)\(b.tensor.shape)", got: t.type.description)
            }
            if t.dtype == .f32 {
                t.bytes.withUnsafeBytes { raw in
                    pointer(b.tensor).update(from: raw.bindMemory(to: Float.self).baseAddress!, count: b.tensor.count)
                }
            } else {
                let p = pointer(b.tensor)
                for k in 0..<t.count { p[k] = Float(t.double(at: k)) }
            }
        }
        try execute()
        var out: [String: TensorData] = [:]
        for b in program.outputs {
            let p = pointer(b.tensor)
            let values = Array(UnsafeBufferPointer(start: p, count: b.tensor.count))
            out[b.name] = b.tensor.dtype == .f32 ? TensorData(floats: values, shape: b.tensor.shape)
                                                 : TensorData(dtype: b.tensor.dtype, shape: b.tensor.shape, values: values.map(Double.init))
        }
        return out
    }

    /// The arena storage of input `name`, for callers that fill it directly: the whole tensor,
    /// `program.batch` images; a caller writes within its `count`.
    public func inputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        program.inputs.first { $0.name == name }.map { UnsafeMutableBufferPointer(start: pointer($0.tensor), count: $0.tensor.count) }
    }

    /// Runs the program on whatever the input buffers hold; `timing`, when given, receives
    /// each step's wall time (profiling).
    public func execute(timing: ((Int, Double) -> Void)? = nil) throws {
        let imageParallel = program.batch >= threads && threads > 1
        // OpenBLAS always runs single-threaded: Kiln splits the work itself, and BLAS worker
        // threads spinning after a call would compete with Kiln's own.
        openblas_set_num_threads(1)
        if let cluster, cluster.isDistributed, gradientBuckets?.cluster !== cluster { gradientBuckets = makeGradientBuckets(cluster) }
        let buckets = cluster?.isDistributed == true ? gradientBuckets : nil
        for (i, step) in program.steps.enumerated() {
            if let buckets, i == buckets.firstUpdate { buckets.finish(self) }
            defer { buckets?.after(step: i, self) }
            if let timing {
                let t = DispatchTime.now().uptimeNanoseconds
                try run(step, index: i, imageParallel: imageParallel)
                timing(i, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
            } else {
                try run(step, index: i, imageParallel: imageParallel)
            }
            for j in repackAfter[i] { pack(step: j, from: pointer(program.steps[j].inputs[1].tensor!)) }
        }
    }
}
