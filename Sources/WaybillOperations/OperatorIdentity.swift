import Foundation

/// Who runs an operator command, for the audit trail when `--by` is not given.
public enum OperatorIdentity {
    /// The login name: `$USER` or `$LOGNAME` as the shell set them, else the session's (`getlogin`), else the name of
    /// the effective user's account; else `uid <n>`. Never empty, never `unknown`.
    public static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        for key in ["USER", "LOGNAME"] {
            if let name = environment[key], !name.isEmpty { return name }
        }
        if let login = getlogin(), let name = String(validatingCString: login), !name.isEmpty { return name }
        if let account = getpwuid(geteuid())?.pointee.pw_name, let name = String(validatingCString: account),
            !name.isEmpty
        {
            return name
        }
        return "uid \(geteuid())"
    }
}
