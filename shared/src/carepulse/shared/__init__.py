"""CarePulse common library: infrastructure and contracts shared by every service.

No clinical logic lives here; see ARCHITECTURE in the README.
"""
