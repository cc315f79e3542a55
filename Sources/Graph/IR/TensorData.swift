/// A tensor's values: element type, static shape and the elements as little-endian bytes
/// (f16 and bf16 as their bit patterns, bool as one byte 0 or 1).
public struct TensorData: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize, "byte count does not match shape")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public var count: Int { shape.reduce(1, *) }
    public var type: TensorType { TensorType(dtype, shape.map { Dim($0) }) }

    public init(floats: [Float], shape: [Int]) {
        self.init(dtype: .f32, shape: shape, bytes: floats.withUnsafeBytes { Array($0) })
    }

    public init(doubles: [Double], shape: [Int]) {
        self.init(dtype: .f64, shape: shape, bytes: doubles.withUnsafeBytes { Array($0) })
    }

    public init(int64s: [Int64], shape: [Int]) {
        self.init(dtype: .i64, shape: shape, bytes: int64s.withUnsafeBytes { Array($0) })
    }

    /// A tensor of `dtype` holding `values` converted (rounded to nearest for f16/bf16,
    /// truncated toward zero for integers, nonzero → true for bool).
    public init(dtype: DType, shape: [Int], values: [Double]) {
        var out = [UInt8]()
        out.reserveCapacity(values.count * dtype.byteSize)
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { out.append(contentsOf: $0) } }
        for v in values {
            switch dtype {
            case .f32: put(Float(v))
            case .f64: put(v)
            case .f16: put(HalfFloat.bits(fromFloat: Float(v)))
            case .bf16: put(HalfFloat.bfloat16Bits(fromFloat: Float(v)))
            case .i8: put(Int8(clamping: TensorData.clampedInt64(v)))
            case .u8: put(UInt8(clamping: TensorData.clampedInt64(v)))
            case .i32: put(Int32(clamping: TensorData.clampedInt64(v)))
            case .i64: put(TensorData.clampedInt64(v))
            case .bool: put(UInt8(v != 0 ? 1 : 0))
            }
        }
        self.init(dtype: dtype, shape: shape, bytes: out)
    }

    /// Double → Int64 toward zero, saturating, NaN → 0 (never traps).
    public static func clampedInt64(_ v: Double) -> Int64 {
        if v.isNaN { return 0 }
        if v >= 9.2233720368547758e18 { return .max }
        if v <= -9.2233720368547758e18 { return .min }
        return Int64(v.rounded(.towardZero))
    }

    /// Whether `v` is representable in the integer (or bool) type `t`.
    public static func fits(_ v: Int64, _ t: DType) -> Bool {
        switch t {
        case .i8: return Int8(exactly: v) != nil
        case .u8: return UInt8(exactly: v) != nil
        case .i32: return Int32(exactly: v) != nil
        case .bool: return v == 0 || v == 1
        default: return true
        }
    }

    /// An integer or bool tensor holding `values` exactly (callers check `fits`).
    public init(dtype: DType, shape: [Int], integers: [Int64]) {
        var out = [UInt8]()
        out.reserveCapacity(integers.count * dtype.byteSize)
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { out.append(contentsOf: $0) } }
        for v in integers {
            switch dtype {
            case .i8: put(Int8(truncatingIfNeeded: v))
            case .u8, .bool: put(UInt8(truncatingIfNeeded: v))
            case .i32: put(Int32(truncatingIfNeeded: v))
            case .i64: put(v)
            case .f32: put(Float(v))
            case .f64: put(Double(v))
            case .f16: put(HalfFloat.bits(fromFloat: Float(v)))
            case .bf16: put(HalfFloat.bfloat16Bits(fromFloat: Float(v)))
            }
        }
        self.init(dtype: dtype, shape: shape, bytes: out)
    }

    /// Element `i` as a Double (exact for every type but i64 beyond 2^53).
    @inline(__always)
    public func double(at i: Int) -> Double {
        let o = i * dtype.byteSize
        return bytes.withUnsafeBytes { raw -> Double in
            switch dtype {
            case .f32: return Double(raw.loadUnaligned(fromByteOffset: o, as: Float.self))
            case .f64: return raw.loadUnaligned(fromByteOffset: o, as: Double.self)
            case .f16: return Double(HalfFloat.float(fromBits: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
            case .bf16: return Double(HalfFloat.float(fromBFloat16Bits: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
            case .i8: return Double(raw.loadUnaligned(fromByteOffset: o, as: Int8.self))
            case .u8: return Double(raw[o])
            case .i32: return Double(raw.loadUnaligned(fromByteOffset: o, as: Int32.self))
            case .i64: return Double(raw.loadUnaligned(fromByteOffset: o, as: Int64.self))
            case .bool: return raw[o] != 0 ? 1 : 0
            }
        }
    }

    /// Element `i` as an Int64 (integer and bool types; floats are truncated).
    public func int64(at i: Int) -> Int64 {
        let o = i * dtype.byteSize
        return bytes.withUnsafeBytes { raw -> Int64 in
            switch dtype {
            case .i8: return Int64(raw.loadUnaligned(fromByteOffset: o, as: Int8.self))
            case .u8, .bool: return Int64(raw[o])
            case .i32: return Int64(raw.loadUnaligned(fromByteOffset: o, as: Int32.self))
            case .i64: return raw.loadUnaligned(fromByteOffset: o, as: Int64.self)
            default:
                return TensorData.clampedInt64(double(at: i))
            }
        }
    }

    public var doubles: [Double] { (0..<count).map(double(at:)) }
    public var int64s: [Int64] { (0..<count).map(int64(at:)) }

    /// A tensor of the same shape whose f32 values `body` writes from this one's, on the raw
    /// buffers (no intermediate arrays).
    public func mapFloats(_ body: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void) -> TensorData {
        precondition(dtype == .f32, "mapFloats needs an f32 tensor")
        var out = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in body(src.bindMemory(to: Float.self), dst.bindMemory(to: Float.self)) }
        }
        return TensorData(dtype: .f32, shape: shape, bytes: out)
    }

    public var floats: [Float] {
        if dtype == .f32 {
            return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return (0..<count).map { Float(double(at: $0)) }
    }

    /// Count, minimum, maximum and mean of the elements, as dumps print them.
    /// Count, min and max over the values that are not NaN (±inf included), mean over the
    /// finite ones, and how many are NaN and ±inf. A tensor of NaN only has min = max = NaN.
    public var summary: TensorSummary {
        var lo = Double.infinity, hi = -Double.infinity, sum = 0.0
        var nan = 0, infinite = 0, seen = 0
        for i in 0..<count {
            let v = double(at: i)
            if v.isNaN { nan += 1; continue }
            seen += 1
            lo = Swift.min(lo, v)
            hi = Swift.max(hi, v)
            if v.isInfinite { infinite += 1 } else { sum += v }
        }
        if seen == 0 { lo = count == 0 ? 0 : .nan; hi = lo }
        let finite = seen - infinite
        return TensorSummary(count: count, min: lo, max: hi, mean: finite == 0 ? (count == 0 ? 0 : .nan) : sum / Double(finite),
                             nanCount: nan, infiniteCount: infinite)
    }
}

/// What a dump shows of a tensor too large to print.
public struct TensorSummary: Sendable, Equatable {
    public var count: Int
    public var min: Double
    public var max: Double
    public var mean: Double
    /// Values that are NaN, and ±inf (not part of the text format: a summary parsed back has 0).
    public var nanCount: Int
    public var infiniteCount: Int

    public init(count: Int, min: Double, max: Double, mean: Double, nanCount: Int = 0, infiniteCount: Int = 0) {
        self.count = count
        self.min = min
        self.max = max
        self.mean = mean
        self.nanCount = nanCount
        self.infiniteCount = infiniteCount
    }

    /// "min … max … mean …", with the NaN and infinity counts when there are any.
    public func line(_ short: (Double) -> String) -> String {
        var s = "min \(short(min))  max \(short(max))  mean \(short(mean))"
        if nanCount > 0 { s += "  NaN \(nanCount)" }
        if infiniteCount > 0 { s += "  ±inf \(infiniteCount)" }
        return s
    }
}

/// IEEE half and bfloat16 conversions, done by hand so they behave the same on every platform.
public enum HalfFloat {
    public static func float(fromBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            // Zero or subnormal: mant × 2^-24.
            let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -v : v
        }
        if exp == 31 {
            return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
    }

    /// Round to nearest even.
    public static func bits(fromFloat f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exp = Int((x >> 23) & 0xFF)
        var mant = x & 0x7F_FFFF
        if exp == 255 { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
        var e = exp - 127 + 15
        if e >= 31 { return sign | 0x7C00 }
        if e <= 0 {
            if e < -10 { return sign }
            mant |= 0x80_0000
            let shift = UInt32(14 - e)
            var half = mant >> shift
            let rem = mant & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if rem > halfway || (rem == halfway && (half & 1) != 0) { half += 1 }
            return sign | UInt16(half)
        }
        var half = mant >> 13
        let rem = mant & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (half & 1) != 0) {
            half += 1
            if half == 0x400 { half = 0; e += 1 }
            if e >= 31 { return sign | 0x7C00 }
        }
        return sign | UInt16(e) << 10 | UInt16(half)
    }

    public static func float(fromBFloat16Bits b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    public static func bfloat16Bits(fromFloat f: Float) -> UInt16 {
        let x = f.bitPattern
        if f.isNaN { return UInt16(x >> 16) | 0x40 }
        let lsb = (x >> 16) & 1
        return UInt16((x &+ 0x7FFF &+ lsb) >> 16)
    }
}
