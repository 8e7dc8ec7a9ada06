package probes

// CredentialGate is credentialGate, for the tests.
var CredentialGate = credentialGate

// AllocatedBy is allocatedBy, for the tests outside the package.
var AllocatedBy = allocatedBy
