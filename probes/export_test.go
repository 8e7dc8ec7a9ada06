package probes

// CredentialGate is credentialGate, for the tests.
var CredentialGate = credentialGate
