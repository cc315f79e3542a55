
/// A tensor as the reference kernels hold it: floating-point types widened to Double,
/// integer and bool types as Int64, so every kernel has one arithmetic per family and the
/// result is rounded once, to the output type, at the end.
public struct HostTensor: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    /// Elements when `dtype` is floating point.
    public var f: [Double]
    /// Elements when `dtype` is an integer type or bool.
    public var i: [Int64]

    public var count: Int { shape.reduce(1, *) }
    public var isFloat: Bool { dtype.isFloatingPoint }

    public init(dtype: DType, shape: [Int], f: [Double] = [], i: [Int64] = []) {
        self.dtype = dtype
        self.shape = shape
        self.f = f
        self.i = i
    }

    public init(_ t: TensorData) {
        dtype = t.dtype
        shape = t.shape
        if t.dtype.isFloatingPoint {
            f = t.doubles
            i = []
        } else {
            f = []
            i = t.int64s
        }
    }

    public static func zeros(_ dtype: DType, _ shape: [Int]) -> HostTensor {
        let n = shape.reduce(1, *)
        return dtype.isFloatingPoint ? HostTensor(dtype: dtype, shape: shape, f: Array(repeating: 0, count: n))
                                     : HostTensor(dtype: dtype, shape: shape, i: Array(repeating: 0, count: n))
    }

    /// Values rounded to `dtype` (integers wrap as C casts do, bool is nonzero).
    public var data: TensorData {
        if dtype.isFloatingPoint { return TensorData(dtype: dtype, shape: shape, values: f) }
        switch dtype {
        case .bool: return TensorData(dtype: .bool, shape: shape, integers: i.map { $0 != 0 ? 1 : 0 })
        default: return TensorData(dtype: dtype, shape: shape, integers: i)
        }
    }

    /// Element `k` as a Double, whatever the family.
    @inline(__always) public func value(_ k: Int) -> Double { isFloat ? f[k] : Double(i[k]) }

    /// A tensor of the same family holding the elements at `indices` (data movement).
    public func gather(_ indices: [Int], shape: [Int], dtype: DType? = nil) -> HostTensor {
        isFloat ? HostTensor(dtype: dtype ?? self.dtype, shape: shape, f: indices.map { f[$0] })
                : HostTensor(dtype: dtype ?? self.dtype, shape: shape, i: indices.map { i[$0] })
    }

    public func reshaped(_ s: [Int]) -> HostTensor {
        var t = self
        t.shape = s
        return t
    }
}

/// Row-major strides of a shape.
public func strides(_ shape: [Int]) -> [Int] {
    var s = Array(repeating: 1, count: shape.count)
    var acc = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        s[d] = acc
        acc *= shape[d]
    }
    return s
}

/// For each element of `outShape`, the flat index of the element of `inShape` that
/// numpy-style broadcasting reads.
func broadcastIndices(from inShape: [Int], to outShape: [Int]) -> [Int] {
    let rank = outShape.count
    let padded = Array(repeating: 1, count: rank - inShape.count) + inShape
    let inStrides = strides(padded)
    return stridedOffsets(outShape, steps: (0..<rank).map { padded[$0] == 1 ? 0 : inStrides[$0] }, as: Int.self)
}

/// For each element of `shape` in row-major order, Σ coordinate[d] · steps[d]: the element a
/// strided view (a transpose, a broadcast) reads. The innermost axis as a run, the others by
/// an odometer. Inlinable, so that callers in other modules get it specialised for their
/// integer type (called generically, the conversions made vit_b_16's compile at batch 16 13 s).
@inlinable
public func stridedOffsets<T: FixedWidthInteger>(_ shape: [Int], steps: [Int], as: T.Type) -> [T] {
    let rank = shape.count, count = shape.reduce(1, *)
    guard rank > 0 else { return [0] }
    guard count > 0 else { return [] }
    let inner = shape[rank - 1], innerStep = steps[rank - 1]
    var coord = [Int](repeating: 0, count: rank)
    var at = 0
    return [T](unsafeUninitializedCapacity: count) { out, initialized in
        var k = 0
        while k < count {
            for j in 0..<inner { out[k + j] = T(at + j * innerStep) }
            k += inner
            var d = rank - 2
            while d >= 0 {
                coord[d] += 1
                at += steps[d]
                if coord[d] < shape[d] { break }
                at -= steps[d] * shape[d]
                coord[d] = 0
                d -= 1
            }
        }
        initialized = count
    }
}

/// The numpy broadcast of several shapes (already checked by shape inference).
func broadcastShape(_ shapes: [[Int]]) -> [Int] {
    let rank = shapes.map(\.count).max() ?? 0
    return (0..<rank).map { d in
        shapes.map { s -> Int in
            let k = d - (rank - s.count)
            return k < 0 ? 1 : s[k]
        }.reduce(1) { $0 == 1 ? $1 : ($1 == 1 ? $0 : max($0, $1)) }
    }
}
