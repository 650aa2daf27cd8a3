"""The local runtime: the synthesized stack on moto, participants in-process, no AWS account needed."""
