import Foundation
import Graph
import ONNX
import Testing

@Suite("Tensor files")
struct TensorFileTests {
    @Test("npy: every supported type round-trips", arguments: [DType.f32, .f64, .f16, .i64, .i32, .u8, .i8, .bool])
    func npyRoundTrip(_ t: DType) throws {
        let values: [Double] = t == .bool ? [1, 0, 1, 1, 0, 0] : [0, 1, 2, 3, 100, 7]
        let data = TensorData(dtype: t, shape: [2, 3], values: values)
        let back = try NPY.decode(NPY.encode(data), path: "x.npy")
        #expect(back == data)
        #expect(NPY.encode(data).count % 64 == 6 * t.byteSize % 64)  // header padded to 64 bytes
    }

    @Test("npy: a hand-written version 2 header and a 0-d array are read")
    func npyVersion2() throws {
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"
        header += String(repeating: " ", count: (64 - (12 + header.count + 1) % 64) % 64) + "\n"
        let n = header.utf8.count
        let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [2, 0, UInt8(n & 0xFF), UInt8(n >> 8), 0, 0] + Array(header.utf8)
            + [1, 0, 0, 0, 2, 0, 0, 0, 255, 255, 255, 255]
        let t = try NPY.decode(bytes, path: "v2.npy")
        #expect(t.dtype == .i32 && t.shape == [3] && t.int64s == [1, 2, -1])
        let scalar = try NPY.decode(NPY.encode(TensorData(floats: [2.5], shape: [])), path: "s.npy")
        #expect(scalar.shape == [] && scalar.floats == [2.5])
    }

    @Test("TensorProto .pb files round-trip with their name")
    func protobuf() throws {
        let t = TensorData(int64s: [5, -7, 9], shape: [3])
        let (name, back) = try TensorData.readProtobuf(t.protobufBytes(name: "idx"), path: "t.pb")
        #expect(name == "idx" && back == t)
    }
}
