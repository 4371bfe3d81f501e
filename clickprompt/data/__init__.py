"""Data: raw readers (sources), preparation, prepared-dataset access, text view and token cache."""
