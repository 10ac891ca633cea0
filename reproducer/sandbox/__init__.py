"""The embedded sandbox: local Valkey fleets and the OVH API emulator they back."""
