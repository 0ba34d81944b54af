"""ECHONET Lite: the frame codec, the device objects the agent reads, a simulated device for
tests, and the agent that turns a home's meter registers into signed 30-minute readings."""
