"""An example dropsearch plugin: the ``example-cnn`` model and the ``example-blobs`` dataset."""
