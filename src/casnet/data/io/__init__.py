"""Files: :mod:`.store` (atomic, resumable stamp stores), :mod:`.fits`, :mod:`.catalog`."""
