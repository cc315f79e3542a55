import CKernels
import Compiler
import Graph

// Weights packed for the direct, Winograd and linear kernels: one buffer for them all, packed once
// from the graph's values, and again by the step that updates a weight (SGD) as it runs.
extension CompiledModel {
    /// One 64-byte-aligned buffer for every packed weight, each at a 16-float boundary; the
    /// steps that have one.
    func allocatePackedWeights() -> Set<Int> {
        var offsets: [Int: Int] = [:]
        var total = 0
        for (i, step) in program.steps.enumerated() {
            if case .convGradData(let c) = step.kernel, c.algorithm == .winograd, step.inputs[1].tensor?.inParameters == true {
                offsets[i] = total
                total += (kiln_winograd_packed_size(c.geometry()) + 15) / 16 * 16
                continue
            }
            if case .linear(let l) = step.kernel {
                guard step.inputs[1].tensor?.inParameters == true else { continue }
                offsets[i] = total
                total += (kiln_linear_packed_size(Int32(l.k), Int32(l.n)) + 15) / 16 * 16
                continue
            }
            // Only weights fixed at compile time can be packed (not ones computed or fed at run time).
            guard case .conv(let c) = step.kernel, step.inputs[1].tensor?.inParameters == true else { continue }
            let count: Int
            switch c.algorithm {
            case .direct: count = kiln_conv_shift_packed_size(c.geometry(channels: c.channels / c.group))
            case .winograd: count = kiln_winograd_packed_size(c.geometry())
            case .depthwise: continue  // reads w [M, KH·KW] as it is
            case .bf16:
                count = (kiln_bconv_packed_bytes(Int32(c.outChannels), Int32(c.channels * c.kernelH * c.kernelW)) + 3) / 4
            case .int8:
                // Per output channel a scale and an offset (16-aligned), then the int8 blocks.
                count = 2 * Self.int8Header(c) + (kiln_qconv_packed_bytes(Int32(c.outChannels), Int32(c.channels * c.kernelH * c.kernelW)) + 3) / 4
            case .im2col, .gemm1x1:
                // Grouped: each group's output channels whole blocks of 8, packed with K the
                // group's patch size (see groupedConv). One group: a last partial block is
                // padded (Program.Conv.remainder).
                guard c.outChannels % (8 * c.group) == 0 || c.group == 1 && c.remainder != nil else { continue }
                count = kiln_conv_shift_packed_size(c.geometry(channels: c.channels / c.group))
            }
            offsets[i] = total
            total += (count + 15) / 16 * 16
        }
        if total > 0 {
            let buffer = alignedFloats(total)
            packedBuffer = buffer
            packedCount = total
            for (i, offset) in offsets { packedWeights[i] = buffer + offset }
        }
        return Set(offsets.keys)
    }

    /// The values packed kernels pack weight `w` from: its graph tensor when it exists only
    /// packed (`source`, by byte offset), the parameter buffer otherwise.
    func withPackSource(_ source: [Int: TensorData], _ w: Program.Tensor, _ body: (UnsafePointer<Float>) -> Void) {
        guard let data = source[w.byteOffset] else { body(pointer(w)); return }
        data.bytes.withUnsafeBytes { body($0.bindMemory(to: Float.self).baseAddress!) }
    }

    /// Packs again the weights packed kernels read, from the parameter buffer (after the
    /// buffer changed from outside: a loaded checkpoint, another model on the same buffer).
    /// A training step's own updates repack as they run (`repackAfter`).
    public func repack() {
        let residentOffsets = Set(resident.compactMap { parameterTensors[$0]?.byteOffset })
        for i in packedWeights.keys.sorted() {
            guard let w = program.steps[i].inputs[1].tensor, residentOffsets.contains(w.byteOffset) else { continue }
            pack(step: i, from: pointer(w))
        }
    }

    /// Packs again the steps whose weight is parameter `name` (changed outside a step).
    public func repack(parameter name: String) {
        guard let t = parameterTensors[name] else { return }
        for i in packedWeights.keys.sorted() {
            guard let w = program.steps[i].inputs[1].tensor, w.byteOffset == t.byteOffset else { continue }
            pack(step: i, from: pointer(w))
        }
    }

    /// Step `i`'s packed weights from the values `w` (its weight input's layout).
    func pack(step i: Int, from w: UnsafePointer<Float>) {
        guard let p = packedWeights[i] else { return }
        switch program.steps[i].kernel {
        case .convGradData(let c):
            // c describes the transposed convolution: channels = the forward's M.
            kiln_winograd_pack_flipped(w, c.geometry(), p)
        case .conv(let c) where c.algorithm == .int8:
            packInt8(step: i, c, from: w, into: p)
        case .conv(let c) where c.algorithm == .bf16:
            kiln_bconv_pack(w, Int32(c.outChannels), Int32(c.channels * c.kernelH * c.kernelW), UnsafeMutableRawPointer(p).assumingMemoryBound(to: UInt16.self))
        case .conv(let c) where c.algorithm == .winograd:
            kiln_winograd_pack(w, c.geometry(), p)
            winogradSigns[i] = Self.signs(w, c.outChannels * c.channels * 9)
        case .conv(let c):
            // A grouped convolution's weights [M, C/groups, KH, KW]: K is one group's patch size.
            kiln_conv_shift_pack(w, c.geometry(channels: c.channels / max(c.group, 1)), p)
        case .linear(let l):
            kiln_linear_pack(w, Int32(l.k), Int32(l.n), l.transposed ? 1 : 0, p)
        default:
            preconditionFailure("step \(i) has packed weights but no packing kernel")
        }
    }

    /// Floats of an int8 convolution's per-channel scales (and again of its offsets).
    static func int8Header(_ c: Program.Conv) -> Int { (c.outChannels + 15) / 16 * 16 }

    /// An int8 convolution's packed weights: scale[m] = input scale · the row's grid step,
    /// offset[m] = input zero point · Σ q[m], then the int8 values in blocks. Weights no longer
    /// on an int8 grid (changed since the compile) leave the step failing with a clear error.
    func packInt8(step i: Int, _ c: Program.Conv, from w: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
        guard let input = c.int8 else { return }
        let m = c.outChannels, k = c.channels * c.kernelH * c.kernelW, header = Self.int8Header(c)
        guard let grid = int8Grid(UnsafeBufferPointer(start: w, count: m * k), rows: m) else {
            int8Unpackable.insert(i)
            return
        }
        int8Unpackable.remove(i)
        let offsets = UnsafeMutableRawPointer(p + header).assumingMemoryBound(to: Int32.self)
        for r in 0..<m {
            p[r] = input.scale * grid.scales[r]
            var sum = 0
            for j in 0..<k { sum += Int(grid.q[r * k + j]) }
            offsets[r] = Int32(input.zero * sum)
        }
        grid.q.withUnsafeBufferPointer { q in
            kiln_qconv_pack(q.baseAddress!, Int32(m), Int32(k), UnsafeMutableRawPointer(p + 2 * header).assumingMemoryBound(to: Int8.self))
        }
    }

    /// Per step: when it updates a parameter in place, the packed steps reading that parameter.
    func ownersOfPackedWeights(_ packedSteps: Set<Int>) -> [[Int]] {
        var readers: [Int: [Int]] = [:]  // weight byte offset → packed steps
        for j in packedSteps.sorted() {
            if let w = program.steps[j].inputs[1].tensor, w.inParameters { readers[w.byteOffset, default: []].append(j) }
        }
        var after = [[Int]](repeating: [], count: program.steps.count)
        for (i, step) in program.steps.enumerated() {
            guard case .sgd = step.kernel, let next = step.outputs.first, next.inParameters, let js = readers[next.byteOffset] else { continue }
            after[i] = js
        }
        return after
    }

    static func signs(_ w: UnsafePointer<Float>, _ count: Int) -> [Int8] {
        (0..<count).map { w[$0] > 0 ? 1 : w[$0] < 0 ? -1 : 0 }
    }
}
