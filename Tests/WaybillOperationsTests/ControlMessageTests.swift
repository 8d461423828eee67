import SagaEngine
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillWire

@Suite("Control message encoding")
struct ControlMessageTests {
    @Test(
        "every action encodes to the documented body",
        arguments: [
            (
                ControlMessage(
                    workflow: "order-fulfillment", sagaId: "o-1", action: .retry, by: "alice", reason: "TMS back"),
                #"{"action":"retry","by":"alice","reason":"TMS back","sagaId":"o-1","workflow":"order-fulfillment"}"#
            ),
            (
                ControlMessage(
                    workflow: "order-fulfillment", sagaId: "o-1", action: .retry, step: "ship", by: "alice", reason: "r"
                ),
                #"{"action":"retry","by":"alice","reason":"r","sagaId":"o-1","step":"ship","workflow":"order-fulfillment"}"#
            ),
            (
                ControlMessage(
                    workflow: "order-fulfillment", sagaId: "o-1", action: .skip, step: "ship",
                    output: [["trackingId": "M-1"]], by: "bob", reason: "shipped by hand"),
                #"{"action":"skip","by":"bob","output":[{"trackingId":"M-1"}],"reason":"shipped by hand","sagaId":"o-1","step":"ship","workflow":"order-fulfillment"}"#
            ),
            (
                ControlMessage(
                    workflow: "returns", sagaId: "r/7", action: .compensate, by: "carol",
                    reason: "customer \"cancelled\""),
                #"{"action":"compensate","by":"carol","reason":"customer \"cancelled\"","sagaId":"r/7","workflow":"returns"}"#
            ),
            (
                ControlMessage(workflow: "returns", sagaId: "r-8", action: .cancel, by: "dave", reason: "dup"),
                #"{"action":"cancel","by":"dave","reason":"dup","sagaId":"r-8","workflow":"returns"}"#
            ),
        ])
    func encodes(message: ControlMessage, body: String) throws {
        #expect(String(decoding: message.encoded(), as: UTF8.self) == body)
        #expect(try ControlMessage.decode(Array(body.utf8)) == message)
    }

    @Test("requests map onto engine commands and back")
    func operatorCommands() throws {
        let skip = ControlMessage(
            workflow: "w", sagaId: "s", action: .skip, step: "ship", output: ["a": 1], by: "alice", reason: "why")
        #expect(
            try skip.operatorCommand()
                == OperatorCommand(action: .skip(step: "ship", output: ["a": 1]), by: "alice", reason: "why"))
        let resume = ControlMessage(workflow: "w", sagaId: "s", action: .retry, by: "alice", reason: "why")
        #expect(try resume.operatorCommand() == OperatorCommand(action: .retry(step: nil), by: "alice", reason: "why"))
        let bare = ControlMessage(workflow: "w", sagaId: "s", action: .skip, step: "ship", by: "a", reason: "r")
        #expect(try bare.operatorCommand().action == .skip(step: "ship", output: .object([:])))
        for command in [
            OperatorCommand(action: .retry(step: "release"), by: "a", reason: "r"),
            OperatorCommand(action: .skip(step: "ship", output: [1, 2]), by: "a", reason: "r"),
            OperatorCommand(action: .skip(step: "ship", output: ["t": "M-1"], branch: 2), by: "a", reason: "r"),
            OperatorCommand(action: .compensate, by: "a", reason: "r"),
            OperatorCommand(action: .cancel, by: "a", reason: "r"),
        ] {
            #expect(try ControlMessage(workflow: "w", sagaId: "s", command: command).operatorCommand() == command)
        }
    }

    @Test(
        "unusable requests name the member that is wrong",
        arguments: [
            (#"not json"#, "the body is not JSON"),
            (#"[1]"#, "the body must be a JSON object"),
            (#"{"workflow":"w","sagaId":"s","by":"a","reason":"r"}"#, "`action` is missing"),
            (
                #"{"workflow":"w","sagaId":"s","action":"undo","by":"a","reason":"r"}"#,
                "unknown action 'undo': expected retry, skip, compensate, cancel"
            ),
            (#"{"workflow":"w","sagaId":7,"action":"cancel","by":"a","reason":"r"}"#, "`sagaId` must be a string"),
            (
                #"{"workflow":"w","sagaId":"s","action":"retry","step":3,"by":"a","reason":"r"}"#,
                "`step` must be a string"
            ),
            (#"{"workflow":"w","sagaId":"s","action":"cancel","by":"a"}"#, "`reason` is missing"),
            (
                #"{"workflow":"w","sagaId":"s","action":"skip","step":"ship","branch":-1,"by":"a","reason":"r"}"#,
                "`branch` must be a branch index"
            ),
            (
                #"{"workflow":"w","sagaId":"s","action":"skip","step":"ship","branch":"wh-01","by":"a","reason":"r"}"#,
                "`branch` must be a branch index"
            ),
        ])
    func refusesBadRequests(body: String, message: String) {
        #expect {
            _ = try ControlMessage.decode(Array(body.utf8))
        } throws: { error in
            guard let error = error as? ControlMessageError else { return false }
            return error.code == .badRequest && error.code.rawValue == "control.bad_request"
                && error.message.hasPrefix(message)
        }
    }

    @Test("a skip without a step or an empty reason cannot become a command")
    func incompleteCommands() {
        #expect(throws: ControlMessageError(.badRequest, "a skip needs `step`: the step to skip")) {
            try ControlMessage(workflow: "w", sagaId: "s", action: .skip, by: "a", reason: "r").operatorCommand()
        }
        #expect(throws: ControlMessageError(.badRequest, "`reason` is empty: say why")) {
            try ControlMessage(workflow: "w", sagaId: "s", action: .cancel, by: "a", reason: "").operatorCommand()
        }
    }

    @Test("replies encode and decode")
    func replies() throws {
        let reply = ControlReply(status: .applied, message: "operator retry by alice → running", sagaStatus: "running")
        let text = String(decoding: reply.encoded(), as: UTF8.self)
        #expect(text == #"{"message":"operator retry by alice → running","sagaStatus":"running","status":"applied"}"#)
        #expect(try ControlReply.decode(reply.encoded()) == reply)
        #expect(
            try ControlReply.decode(Array(#"{"status":"rejected","message":"nothing to retry"}"#.utf8))
                == ControlReply(status: .rejected, message: "nothing to retry"))
        #expect(
            throws: ControlMessageError(.badReply, "unknown reply status 'ok': expected applied, rejected or error")
        ) {
            try ControlReply.decode(Array(#"{"status":"ok"}"#.utf8))
        }
        #expect(PoolQueues.partition(7, pool: "waybill") == "waybill.p07")
        #expect(PoolQueues.partition(ofQueue: "shop.p12", pool: "shop") == 12)
    }
}
