import Foundation
import Testing
import WaybillTestSupport

@testable import SagaStore

/// Store errors keep the error underneath as their cause and say what to do for each reason.
@Suite("Store error causes")
struct StoreErrorCauseTests {
    @Test("damaged state bytes are reported as damaged, with what is wrong with them as the cause")
    func damagedState() {
        let bytes = StateCodec.encode(Fixtures.fullInstance())
        #expect {
            try SagaStateFormat.decode(Array(bytes.prefix(10)))
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            let cause = try #require(error.cause as? StateCodecError)
            return error.code == .corruptState && cause.code == .damagedState
                && error.message.contains("restore the store from a backup")
                && !error.message.contains("version that wrote it")
                && error.description.hasSuffix("(\(cause))")
        }
    }

    @Test("a newer state format says which Waybill can decode it, with the format versions in the cause")
    func newerFormat() {
        var bytes = StateCodec.encode(Fixtures.fullInstance())
        bytes[2] = 9
        #expect {
            try SagaStateFormat.decode(bytes)
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            let cause = try #require(error.cause as? StateCodecError)
            return error.code == .corruptState && cause.code == .unsupportedStateFormat
                && error.message.contains("decode it with that version or a later one")
                && cause.message.contains("format 9")
        }
    }

    @Test("a directory that cannot be created keeps the file system's error as the cause")
    func uncreatableDirectory() throws {
        let directory = try TemporaryDirectory()
        try Data("not a directory".utf8).write(to: directory.url.appendingPathComponent("file"))
        #expect {
            try SagaStore.open(in: directory, "file/sub/waybill.sqlite")
        } throws: { error in
            let error = try #require(error as? SagaStoreError)
            let cause = try #require(error.cause)
            return error.code == .notWritable && error.description.hasSuffix("(\(cause))")
        }
    }
}
