import Foundation
import Testing
import WaybillOperations

/// Who the audit trail names when an operator gives no `--by`.
struct OperatorIdentityTests {
    @Test("without USER or LOGNAME the actor is still a name (the account's, or the uid), never 'unknown'")
    func actorWithoutEnvironment() {
        let actor = OperatorIdentity.current(environment: [:])
        #expect(!actor.isEmpty)
        #expect(actor != "unknown")
        let account = getpwuid(geteuid()).flatMap { String(validatingCString: $0.pointee.pw_name) }
        let login = getlogin().flatMap { String(validatingCString: $0) }
        #expect([login, account, "uid \(geteuid())"].contains(actor), "\(actor)")
        #expect(OperatorIdentity.current(environment: ["USER": "", "LOGNAME": "ann"]) == "ann")
    }
}
