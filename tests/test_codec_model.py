"""The Codec API: shapes, variable bitrate, save/load, causality, bad input, a tiny codec that learns."""
import pytest
import torch
import yaml

from codec import Codec, CodecConfig
from codec.train.losses import MultiScaleMelLoss


def tiny_config(**overrides) -> CodecConfig:
    values = dict(sample_rate=8000, channels=1, dimension=16, n_filters=4, ratios=[4, 2], lstm_layers=1,
                  num_codebooks=3, cardinality=32, kmeans_iters=3)
    return CodecConfig(**{**values, **overrides})


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(causal=True, conv_shortcut=True, lstm_layers=0),
    dict(channels=2, ratios=[5, 3, 2], n_residual_layers=2, norm="none", pad_mode="constant"),
    dict(decoder="istft", istft_width=16, istft_layers=2),
    dict(decoder="istft", channels=2, ratios=[5, 3, 2], istft_width=8, istft_layers=1),
])
def test_shapes_and_properties(overrides):
    codec = Codec(tiny_config(**overrides))
    hop = codec.hop_length
    assert hop == torch.tensor(codec.config.ratios).prod().item()
    assert codec.frame_rate == codec.sample_rate / hop
    assert (codec.num_codebooks, codec.cardinality) == (3, 32)
    wav = torch.randn(2, codec.channels, 5 * hop + 1)
    out = codec.train()(wav)
    assert out.audio.shape == (2, codec.channels, 6 * hop)
    assert out.codes.shape == (2, 3, 6) and out.codes.dtype == torch.int64
    assert out.commitment_loss.dim() == 0
    assert {"usage/2", "perplexity/2", "bits/2"} <= set(out.metrics)
    codec.eval()
    codes = codec.encode(wav)
    assert codes.shape == (2, 3, 6) and codes.dtype == torch.int64
    assert ((0 <= codes) & (codes < 32)).all()
    assert codec.decode(codes).shape == (2, codec.channels, 6 * hop)


def test_set_num_codebooks_gives_a_prefix_of_the_codes():
    codec = Codec(tiny_config()).eval()
    wav = torch.randn(1, 1, 400)
    all_codes = codec.encode(wav)
    codec.set_num_codebooks(2)
    codes = codec.encode(wav)
    assert torch.equal(codes, all_codes[:, :2])
    assert codec.decode(codes).shape == (1, 1, 400)
    assert codec(wav).codes.shape[1] == 2
    for k in (0, 4):
        with pytest.raises(ValueError, match=r"num_codebooks must be in \[1, 3\]"):
            codec.set_num_codebooks(k)


def test_save_and_load_round_trip(tmp_path):
    codec = Codec(tiny_config(causal=True)).train()
    codec(torch.randn(2, 1, 800))  # k-means start and one EMA step: buffers are no longer the defaults
    codec.save_pretrained(tmp_path)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["causal"] is True
    loaded = Codec.from_pretrained(tmp_path).eval()
    codec.eval()
    wav = torch.randn(1, 1, 321)
    assert torch.equal(loaded.encode(wav), codec.encode(wav))
    assert torch.equal(loaded.decode(codec.encode(wav)), codec.decode(codec.encode(wav)))
    for name, tensor in codec.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_istft_decoder_saves_and_loads_without_folding_the_encoder(tmp_path):
    codec = Codec(tiny_config(decoder="istft", istft_width=16, istft_layers=2)).train()
    codec(torch.randn(2, 1, 800))
    codec.eval().save_pretrained(tmp_path)
    loaded = Codec.from_pretrained(tmp_path).eval()
    assert loaded.config == codec.config and loaded.config.norm == "weight_norm"
    assert loaded.decoder_has_weight_norm is False
    wav = torch.randn(1, 1, 321)
    codes = codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


@pytest.mark.parametrize("overrides, message", [
    (dict(decoder="wavenet"), r"decoder must be one of \['istft', 'seanet'\], got 'wavenet'"),
    (dict(decoder="istft", causal=True), "the istft decoder is not causal"),
])
def test_bad_decoder_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        Codec(tiny_config(**overrides))


@pytest.mark.parametrize("decoder_only", [False, True])
def test_folded_weight_norm_saves_and_loads(tmp_path, decoder_only):
    codec = Codec(tiny_config()).eval()
    wav = torch.randn(1, 1, 160)
    codes = codec.encode(wav)
    audio = codec.decode(codes)
    codec.remove_weight_norm(decoder_only=decoder_only)
    assert not codec.decoder_has_weight_norm
    assert (codec.decode(codes) - audio).abs().max() < 1e-5
    assert torch.equal(codec.encode(wav), codes)
    codec.save_pretrained(tmp_path)  # a codec folded in part is folded whole first
    loaded = Codec.from_pretrained(tmp_path).eval()
    assert loaded.config.norm == "none"
    assert torch.equal(loaded.encode(wav), codes)
    assert (loaded.decode(codes) - audio).abs().max() < 1e-5


def test_checkpoint_that_does_not_match_its_config_names_the_tensor(tmp_path):
    Codec(tiny_config()).save_pretrained(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["n_filters"] = 8
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"tensor 'decoder\.layers\.0\.conv\.bias' has shape \(16,\).*\(32,\)"):
        Codec.from_pretrained(tmp_path)
    config["n_filters"], config["num_codebooks"] = 4, 4
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"missing tensor 'quantizer\.levels\.3\.cluster_size'"):
        Codec.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        Codec.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(causal=True, conv_shortcut=True, lstm_layers=0),
    dict(channels=2, ratios=[5, 3, 2], n_residual_layers=3, residual_kernel_size=5, last_kernel_size=9,
         pad_mode="constant"),
])
def test_decoding_in_chunks_gives_the_one_pass_audio(overrides):
    decoder = Codec(tiny_config(**overrides)).eval().decoder
    with torch.no_grad():
        for frames in (1, 5, 12, 23):
            latent = torch.randn(2, 16, frames)
            whole = decoder(latent)
            for chunk_frames in (1, 4, 7):
                torch.testing.assert_close(decoder.decode(latent, chunk_frames), whole, rtol=0, atol=1e-5)
        decoder.reach = 0  # too little context: the chunks' edges show
        assert not torch.allclose(decoder.decode(latent, 4), whole, rtol=0, atol=1e-3)
        with pytest.raises(ValueError, match="chunk_frames must be at least 1"):
            decoder.decode(latent, 0)


def test_causal_codes_do_not_depend_on_the_future():
    codec = Codec(tiny_config(causal=True)).eval()
    wav = torch.randn(1, 1, 20 * codec.hop_length)
    prefix = wav[..., : 12 * codec.hop_length]
    assert torch.equal(codec.encode(prefix), codec.encode(wav)[..., :12])
    centred = Codec(tiny_config(causal=False)).eval()
    assert not torch.equal(centred.encode(prefix), centred.encode(wav)[..., :12])


@pytest.mark.parametrize("wav, message", [
    (torch.randn(2, 2, 100), r"expected wav \[B, 1, N\]"),
    (torch.randn(100), r"expected wav \[B, 1, N\]"),
    (torch.randn(1, 1, 7), "at least one hop"),
    (torch.full((1, 1, 100), float("nan")), "finite"),
    (torch.ones(1, 1, 100, dtype=torch.int16), "float"),
])
def test_bad_audio_is_refused(wav, message):
    codec = Codec(tiny_config())
    with pytest.raises(ValueError, match=message):
        codec.encode(wav)
    with pytest.raises(ValueError, match=message):
        codec(wav)


@pytest.mark.parametrize("codes, message", [
    (torch.full((1, 3, 5), 32), r"codes in \[0, 32\)"),
    (torch.full((1, 3, 5), -1), r"codes in \[0, 32\)"),
    (torch.zeros(1, 2, 5, dtype=torch.long), r"codes \[B, 3, T\]"),
    (torch.zeros(3, 5, dtype=torch.long), r"codes \[B, 3, T\]"),
    (torch.zeros(1, 3, 5), "integer"),
])
def test_bad_codes_are_refused(codes, message):
    with pytest.raises(ValueError, match=message):
        Codec(tiny_config()).decode(codes)


def test_tiny_codec_learns_to_reconstruct():
    torch.manual_seed(0)
    codec = Codec(tiny_config(n_filters=8, cardinality=64, num_codebooks=2)).train()
    optimizer = torch.optim.Adam(codec.parameters(), lr=5e-3)
    time = torch.arange(512) / 8000

    def batch(seed):
        generator = torch.Generator().manual_seed(seed)
        frequency = 100 + 700 * torch.rand(4, 1, 1, generator=generator)
        return 0.5 * torch.sin(2 * torch.pi * frequency * time)

    def reconstruction_error(wav):
        codec.eval()
        error = (codec.decode(codec.encode(wav)) - wav).abs().mean().item()
        codec.train()
        return error

    held_out = batch(10_000)
    before = reconstruction_error(held_out)
    for step in range(100):
        wav = batch(step)
        out = codec(wav)
        loss = (out.audio - wav).abs().mean() + out.commitment_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = reconstruction_error(held_out)
    silence = held_out.abs().mean().item()
    assert after < 0.4 * min(before, silence), f"L1 error {before:.4f} -> {after:.4f} (silence: {silence:.4f})"


def test_istft_decoder_learns_the_spectrum_of_tones():
    """Trained with a mel loss alone on the latents of tones, the inverse-STFT decoder's mel distance to
    them falls to less than half that of the untrained decoder (gradients reach it through the iSTFT)."""
    torch.manual_seed(0)
    codec = Codec(tiny_config(decoder="istft", istft_width=32, istft_layers=2))
    mel_loss = MultiScaleMelLoss(8000, n_ffts=(64, 128, 256), n_mels=32)
    time = torch.arange(1024) / 8000

    def tones(seed):
        generator = torch.Generator().manual_seed(seed)
        frequency = 100 + 700 * torch.rand(8, 1, 1, generator=generator)
        return 0.5 * torch.sin(2 * torch.pi * frequency * time) + 0.2 * torch.sin(6 * torch.pi * frequency * time)

    def mel_distance(wav):
        with torch.no_grad():
            return mel_loss(codec.decoder(codec.encoder(wav)), wav).item()

    held_out = tones(10_000)
    before = mel_distance(held_out)
    optimizer = torch.optim.Adam(codec.decoder.parameters(), lr=1e-2)
    for step in range(200):
        wav = tones(step)
        loss = mel_loss(codec.decoder(codec.encoder(wav).detach()), wav)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = mel_distance(held_out)
    assert after < 0.5 * before, f"mel distance {before:.3f} -> {after:.3f}"
