import Graph
import Testing

/// Bit patterns from the IEEE 754 binary16 and bfloat16 definitions.
@Suite("Half-precision conversions")
struct HalfFloatTests {
    static let known: [(Float, UInt16)] = [
        (1, 0x3C00), (-2, 0xC000), (65504, 0x7BFF), (0.5, 0x3800),
        (Float(sign: .plus, exponent: -24, significand: 1), 0x0001),  // smallest subnormal
        (Float(sign: .plus, exponent: -14, significand: 1), 0x0400),  // smallest normal
        (.infinity, 0x7C00), (70000, 0x7C00), (0, 0x0000),
    ]

    @Test("binary16 encodes known values exactly", arguments: known)
    func encode(value: Float, bits: UInt16) {
        #expect(HalfFloat.bits(fromFloat: value) == bits)
        if value <= 65504 { #expect(HalfFloat.float(fromBits: bits) == value) }
    }

    @Test("binary16 rounds to nearest even")
    func roundsToEven() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even mantissa (1.0).
        #expect(HalfFloat.bits(fromFloat: 1 + Float(sign: .plus, exponent: -11, significand: 1)) == 0x3C00)
        // 1 + 3·2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even (1+2^-9 = 0x3C02).
        #expect(HalfFloat.bits(fromFloat: 1 + 3 * Float(sign: .plus, exponent: -11, significand: 1)) == 0x3C02)
    }

    @Test("bfloat16 keeps the top 16 bits, rounded to nearest even")
    func bfloat16() {
        #expect(HalfFloat.bfloat16Bits(fromFloat: 1) == 0x3F80)
        #expect(HalfFloat.float(fromBFloat16Bits: 0xC040) == -3)
        #expect(HalfFloat.bfloat16Bits(fromFloat: Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
        #expect(HalfFloat.bfloat16Bits(fromFloat: Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie → even
        #expect(HalfFloat.bfloat16Bits(fromFloat: Float(bitPattern: 0x3F80_8001)) == 0x3F81)
    }
}
