"""Build `evals/datasets/judge_pairs.jsonl`: labelled (claim, source, supported) pairs.

The claims below were written by hand after reading each abstract: `paraphrase`
claims restate something the abstract says in other words (supported); the others
are unsupported on purpose:

* `number`      a figure changed (often to another figure of the same abstract, so a
                 check for "every number occurs in the source" does not catch it);
* `swap`        a method, model or dataset name replaced by another;
* `negation`    the finding negated or reversed;
* `overclaim`   the abstract's claim stretched ("every", "always", "all tasks");
* `other_paper` a true statement about a related paper, checked against this one.

Every source paper is from the half of the corpus NOT in `train-papers.txt` (that
half is kept for measuring). Run `python -m evals.make_judge_pairs` to rebuild the
file; it fails loudly when a title no longer resolves to exactly one such paper.

The file holds three sets. `jp-*`: the 264 claims below (55 papers), written in sessions 1-2.
`h2-*`: 300 claims about 75 other held-out papers (`judge_pairs_v2_claims.jsonl`, session 9),
two faithful and two wrong per paper, ten of each error kind per writer, written by three
writers who saw neither the judge nor any other pairs, then labelled blind by a second reader,
who agreed on all 300, before anything scored them. The first set had been measured eleven
times while the judge was built; the second had not. `h3-*`: 300 claims about 75 held-out papers
neither earlier set uses (`judge_pairs_v3_claims.jsonl`, session 11), written and labelled the
same way by three new writers and another blind reader (agreement 300 of 300), committed
before any judge scored them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from index.loaders import load_paths
from index.papers import merge, normalise_title
from rag.config import BUNDLED_CORPUS

DATASETS = Path(__file__).resolve().parent / "datasets"
OUT = DATASETS / "judge_pairs.jsonl"
TRAIN = DATASETS / "train-papers.txt"
CLAIMS_V2 = DATASETS / "judge_pairs_v2_claims.jsonl"
CLAIMS_V3 = DATASETS / "judge_pairs_v3_claims.jsonl"

P, NUM, SWAP, NEG, OVER = "paraphrase", "number", "swap", "negation", "overclaim"

#: title prefix -> [(kind, claim)], checked against that paper's abstract.
CLAIMS: dict[str, list[tuple[str, str]]] = {
    "Search Self-play": [
        (
            P,
            "The proposer and the solver improve their agent capabilities together through both competition and cooperation.",
        ),
        (
            P,
            "In search self-play, a single LLM both proposes deep search questions and solves them, calling a search engine over several turns.",
        ),
        (
            P,
            "Each proposed query is checked by giving the solver every document the proposer retrieved and testing, through retrieval-augmented generation, whether it can then be answered correctly.",
        ),
        (NEG, "Search self-play relies on human-annotated ground-truth answers to supervise the solver."),
        (OVER, "Search self-play lets search agents surpass human experts on every deep-research benchmark."),
    ],
    "A Multi-Level Framework for Accelerating": [
        (
            P,
            "The framework cut training compute by about 20% for BERT-Base and GPT-Base models without hurting their performance.",
        ),
        (
            P,
            "The framework trains a transformer in a V-cycle that shrinks and then grows the model, moving parameters between neighbouring levels by coalescing and de-coalescing.",
        ),
        (
            P,
            "An interpolation operator breaks the neuron symmetry introduced by de-coalescing, which helps the model converge.",
        ),
        (
            NUM,
            "The framework cuts the computational cost of training BERT-Large by up to 72.5% while preserving performance.",
        ),
        (SWAP, "Besides BERT and GPT, the framework was tested on the vision model Swin Transformer."),
    ],
    "Adding Gradient Noise": [
        (
            P,
            "Injecting noise into the gradients made it possible to train a fully connected network with 20 layers using plain gradient descent, even from a bad initialisation.",
        ),
        (
            P,
            "On a difficult question-answering task, gradient noise lowered the error rate by 72% relative to a well-tuned baseline.",
        ),
        (NEG, "Adding gradient noise raises the training loss and makes very deep networks overfit more."),
        (
            NUM,
            "Gradient noise doubled the number of accurate binary multiplication models found over 70,000 random restarts.",
        ),
    ],
    "Yi: Open Foundation Models": [
        (
            P,
            "Yi's context length is extended to 200K through lightweight continual pretraining, with strong needle-in-a-haystack retrieval.",
        ),
        (
            P,
            "Yi's base language models come in 6B and 34B sizes and were extended into chat, 200K long-context, depth-upscaled and vision-language variants.",
        ),
        (
            P,
            "The Yi authors credit the models' performance mainly to data quality achieved through their data-engineering work.",
        ),
        (NUM, "The Yi chat models were fine-tuned on an instruction dataset of roughly 100K examples."),
        (SWAP, "Yi reaches a 200K context length by switching to a sparse attention architecture."),
    ],
    "On Giant's Shoulders": [
        (
            P,
            "Instead of one fixed transfer ratio, the method fuses the logits of several task-specific small models with weights that change at every decoding step.",
        ),
        (
            P,
            "The fusion weights are obtained by solving optimisation problems constrained by the Kullback-Leibler divergence.",
        ),
        (
            NUM,
            "Transferring from a 7B to a 13B model, the method closes 86.3% of the gap to full fine-tuning in single-task settings.",
        ),
        (OVER, "Dynamic logit fusion outperforms full fine-tuning of the 13B model on all tasks."),
    ],
    "Pooling And Attention": [
        (
            P,
            "To isolate the effect of pooling and attention choices, the study trains LLM-based embedding models that share the same base model and training data.",
        ),
        (
            P,
            "Multi-Layers Trainable Pooling uses cross-attention to transform the outputs of every hidden layer, not only the final one.",
        ),
        (
            NEG,
            "Bidirectional attention with a trainable pooling layer clearly beats EOS-last token pooling with causal attention on clustering and classification.",
        ),
        (
            OVER,
            "Multi-Layers Trainable Pooling is statistically superior to existing pooling methods on all embedding tasks, clustering and classification included.",
        ),
    ],
    "NV-Embed": [
        (
            P,
            "NV-Embed pools embeddings with a latent attention layer, which improves retrieval and downstream accuracy over mean pooling or the last <EOS> token.",
        ),
        (P, "NV-Embed drops the LLM's causal attention mask during contrastive training."),
        (
            NUM,
            "NV-Embed set a record score of 59.36 on the Massive Text Embedding Benchmark across its 56 tasks, ranking first.",
        ),
        (
            SWAP,
            "In its first stage, NV-Embed applies contrastive instruction tuning on classification and clustering datasets.",
        ),
    ],
    "World Model on Million-Length": [
        (
            P,
            "The context size is raised step by step from 4K to 1M tokens, and long sequences are trained with RingAttention.",
        ),
        (
            P,
            "The authors release a family of 7B-parameter models that can process text documents and videos longer than 1M tokens.",
        ),
        (NUM, "The released LWM models have 70B parameters and handle sequences of over 1M tokens."),
        (SWAP, "The models are trained on long sequences with the sparse attention of Longformer."),
    ],
    "Momentum Auxiliary Network": [
        (
            P,
            "The Momentum Auxiliary Network passes information between local blocks through an exponential moving average of the parameters of neighbouring blocks.",
        ),
        (
            P,
            "Compared with end-to-end training on ImageNet, the method needs over 45% less GPU memory and still performs better.",
        ),
        (
            NEG,
            "Supervised local learning with the Momentum Auxiliary Network uses more GPU memory than end-to-end backpropagation.",
        ),
        (
            SWAP,
            "The method was validated on four image classification datasets: CIFAR-100, STL-10, SVHN and ImageNet.",
        ),
    ],
    "DETRs with Collaborative": [
        (
            P,
            "Co-DETR improves how the encoder of an end-to-end detector learns by adding parallel auxiliary heads trained with one-to-many assignment schemes like ATSS and Faster RCNN.",
        ),
        (
            P,
            "Because the auxiliary heads are dropped at inference time, Co-DETR adds no parameters or compute to the original detector and needs no NMS.",
        ),
        (NUM, "With a ViT-L backbone, Co-DETR reaches 67.9% AP on COCO test-dev."),
        (
            NEG,
            "Co-DETR keeps its auxiliary heads at inference, which adds computational cost to the detector.",
        ),
    ],
    "Less is More: Selective Reduction": [
        (
            P,
            "The authors suspect that medical images resemble each other so much that this similarity hampers contrastive learning.",
        ),
        (
            P,
            "Reducing redundancy in the pre-training data raised the AUC on the COVID CT Classification Grand Challenge from 0.78 to 0.83.",
        ),
        (NUM, "Thanks to the smaller dataset, pre-training ran up to twenty times faster."),
        (
            OVER,
            "Dataset reduction improves contrastive pre-training for every kind of medical imaging task, segmentation and detection included.",
        ),
    ],
    "Effectiveness of Mining Audio": [
        (P, "For Hindi, adding Shrutilipi reduced the average word error rate from 18.8% to 13.5%."),
        (P, "The authors mined audio-text pairs for Shrutilipi from All India Radio's public archives."),
        (
            P,
            "An adapted Needleman-Wunsch algorithm aligns transcript sentences with segments of long recordings while tolerating OCR errors and untranscribed speech.",
        ),
        (NUM, "Shrutilipi contains more than 6,400 hours of labelled audio in 21 Indian languages."),
        (
            SWAP,
            "Adding Shrutilipi to the training data of Whisper models lowers WER by 5.8% on average for 7 languages of IndicSUPERB.",
        ),
    ],
    "Deep Model Assembling": [
        (
            P,
            "The approach splits a large model into smaller modules, trains them separately and then puts the trained modules back together.",
        ),
        (
            P,
            "A shared global meta model implicitly links all modules so that modules trained independently remain compatible.",
        ),
        (
            NUM,
            "On ViT-Huge, the method improves ImageNet-1K accuracy by 2.7% over end-to-end training while cutting training cost by 27%.",
        ),
        (
            NEG,
            "The divide-and-conquer training is cheaper than end-to-end training but reaches lower accuracy.",
        ),
    ],
    "Too Large; Data Reduction": [
        (
            P,
            "TL;DR first picks representative samples with a codebook-based encoder-decoder captioner, then writes new captions to complement the original ones.",
        ),
        (P, "TL;DR shrinks the noisy YFCC15M dataset from 15M samples to 2.5M."),
        (
            OVER,
            "Models pre-trained on the data compressed by TL;DR outperform full-scale training on every downstream task.",
        ),
        (SWAP, "TL;DR reduces the SBU Captions dataset from 2.82M to 0.67M samples."),
    ],
    "LongEmbed": [
        (
            P,
            "Training-free strategies such as position interpolation can stretch the context window of existing embedding models several times over.",
        ),
        (
            P,
            "The LongEmbed benchmark combines two synthetic tasks with four real-world tasks whose documents vary in length.",
        ),
        (
            NUM,
            "The paper extends the context window of embedding models to 64k tokens without extra training.",
        ),
        (
            NEG,
            "The results suggest that absolute position encoding is better suited than RoPE for extending the context window.",
        ),
    ],
    "E^2-LLM": [
        (
            P,
            "Earlier length-extension methods typically need extra training on long-context data and costly GPU time.",
        ),
        (
            P,
            "E2-LLM is trained only once, on short 4k contexts, yet supports different context windows at inference.",
        ),
        (
            P,
            "During training, E2-LLM applies different augmentations of the RoPE scale and position index parameters to different samples.",
        ),
        (NEG, "E2-LLM needs long-context training data, such as 32k-token documents."),
    ],
    "Data Filtering Networks": [
        (
            P,
            "DFN-2B, a new dataset of 2 billion examples, is released, and good filtering networks can be trained from scratch on public data alone.",
        ),
        (
            P,
            "How useful a network is for filtering data is not the same as how well it performs on downstream tasks.",
        ),
        (P, "A ViT-H trained on DFN-5B reaches 83.0% zero-shot accuracy on ImageNet."),
        (
            SWAP,
            "To support research on dataset design, the authors publicly release DFN-5B, a dataset of 2 billion examples.",
        ),
        (
            NEG,
            "The paper finds that filtering networks with higher ImageNet accuracy produce better training sets.",
        ),
    ],
    "DreamLIP": [
        (
            P,
            "DreamLIP re-captions 30M images with detailed descriptions written by a pre-trained multimodal LLM.",
        ),
        (
            P,
            "DreamLIP samples sub-captions from the long captions to form several positive pairs and uses a grouping loss to match each sub-caption with local image patches.",
        ),
        (
            NUM,
            "Trained on 30M image-text pairs, DreamLIP matches or beats CLIP trained on 4B pairs in image-text retrieval and semantic segmentation.",
        ),
        (OVER, "DreamLIP beats CLIP trained with 400M pairs on every downstream task."),
    ],
    "POINTS: Improving": [
        (
            P,
            "POINTS filters its pre-training data by perplexity, keeping the lowest-perplexity samples, which gives a curated set of 1M examples.",
        ),
        (
            P,
            "When adding more instruction-tuning datasets brought only small gains, the authors used a model soup over models tuned on different datasets.",
        ),
        (
            NUM,
            "The resulting POINTS model has 13B parameters and is competitive with state-of-the-art models.",
        ),
        (
            NEG,
            "POINTS keeps the highest-perplexity pre-training data on the grounds that it is the most informative.",
        ),
    ],
    "Language Models can Self-Lengthen": [
        (
            P,
            "Self-Lengthen uses only the LLM's own knowledge and skills, without extra data or proprietary models.",
        ),
        (
            P,
            "In Self-Lengthen a Generator writes a first response, an Extender splits and expands it into a longer one, and both are trained on the result, round after round.",
        ),
        (SWAP, "Self-Lengthen was applied to open-source LLMs such as Mistral and Gemma."),
        (OVER, "Self-Lengthen lets LLMs write texts of unlimited length with no loss in quality."),
    ],
    "Efficient Dataset Distillation": [
        (
            P,
            "A clipping loss and a gradient penalty are added to control how fast parameters change along the expert trajectories.",
        ),
        (
            P,
            "To reduce sensitivity to random initialisation, the synthetic dataset is initialised with representative samples and the inner-loop loss is balanced.",
        ),
        (
            SWAP,
            "To avoid accumulating errors, the method adds an intermediate matching loss and label smoothing.",
        ),
        (
            OVER,
            "The distilled synthetic datasets fully replace the original large datasets with no loss of accuracy.",
        ),
    ],
    "LAION-5B": [
        (
            P,
            "Before LAION-5B, no dataset with billions of image-text pairs was openly available to the research community.",
        ),
        (
            P,
            "LAION-5B holds 5.85 billion image-text pairs that passed CLIP filtering; 2.32B of them are English.",
        ),
        (
            P,
            "The authors used LAION-5B to replicate and fine-tune foundation models such as CLIP, GLIDE and Stable Diffusion.",
        ),
        (NUM, "LAION-5B contains 5.85 billion image-text pairs, of which 3.2B are in English."),
        (SWAP, "The authors show that DALL-E and Imagen can be replicated using LAION-5B."),
    ],
    "MobileCLIP": [
        (
            P,
            "MobileCLIP's training transfers knowledge from an image captioning model and from an ensemble of strong CLIP encoders.",
        ),
        (
            P,
            "The extra knowledge is stored in a reinforced dataset, so training incurs no additional compute.",
        ),
        (
            NUM,
            "MobileCLIP-S2 is 3.2 times faster than the previous best ViT-B/16 CLIP model while being more accurate.",
        ),
        (
            NEG,
            "MobileCLIP-S2 is faster than the previous best CLIP model based on ViT-B/16 but less accurate.",
        ),
    ],
    "Online Normalization for Training": [
        (
            P,
            "Online Normalization normalises over the sample dimension like Batch Normalization, but without batches, and is just as accurate.",
        ),
        (P, "The technique offers an unbiased way to compute the gradient of normalised activations."),
        (OVER, "Online Normalization is more accurate than Batch Normalization on every task."),
        (SWAP, "Experiments were run on ImageNet, CIFAR and WikiText."),
    ],
    "FlexiGPT": [
        (
            P,
            "FlexiGPT prunes blocks chosen by an importance score and replaces each with a block that shares weights with unpruned parts and adds block-specific low-rank adapters.",
        ),
        (P, "At a compression rate of 40%, the method is state of the art on all six benchmarks."),
        (NUM, "At a 30% compression rate, FlexiGPT is state of the art on 6/6 benchmarks."),
        (NEG, "Extending smaller models with the approach lowers their benchmark performance."),
    ],
    "Skywork-MoE": [
        (
            P,
            "Skywork-MoE is initialised from Skywork-13B's dense checkpoints and has 16 experts and 146 billion parameters in total.",
        ),
        (P, "Gating logit normalization is introduced to make the experts more diverse."),
        (NUM, "Skywork-MoE has 146 billion parameters spread over 13 experts."),
        (
            OVER,
            "The report concludes that training from scratch is always preferable to upcycling dense checkpoints.",
        ),
    ],
    "Scaling Laws for Upcycling": [
        (
            P,
            "The authors give guidance on when upcycling a dense model into an MoE beats training from scratch within a fixed budget.",
        ),
        (
            P,
            "The paper derives empirical scaling laws that relate the performance of upcycled MoE models to dataset size and model configuration.",
        ),
        (
            P,
            "An interaction term between the dense and the upcycled training data limits how efficient upcycling is at large compute budgets.",
        ),
        (NEG, "The study finds that upcycling becomes more efficient as the computational budget grows."),
    ],
    "AdaFace": [
        (
            P,
            "AdaFace changes how much weight hard or easy samples receive according to each image's quality, which it estimates from feature norms.",
        ),
        (P, "AdaFace beats the previous state of the art on IJB-B, IJB-C, IJB-S and TinyFace."),
        (SWAP, "AdaFace estimates image quality with a separate face-quality assessment network."),
        (OVER, "AdaFace improves over the state of the art on every face recognition benchmark."),
    ],
    "Microsoft COCO": [
        (
            P,
            "The dataset includes photos of 91 object types that a four-year-old child could easily recognise.",
        ),
        (
            P,
            "The dataset collects pictures of complex everyday scenes in which common objects appear in their natural context.",
        ),
        (
            P,
            "COCO provides 2.5 million labelled instances in 328k images, each object annotated with a per-instance segmentation.",
        ),
        (NUM, "The dataset covers 91 object types in 2.5 million images."),
        (SWAP, "Baseline detection and segmentation results are given with a Faster R-CNN model."),
    ],
    "PHI-S": [
        (
            P,
            "The work examines how the teachers' activation statistics and the choice of loss function affect the student in label-free multi-teacher distillation.",
        ),
        (
            P,
            "PHI-S uses Hadamard matrices to standardise every dimension of a multivariate distribution with the same scale.",
        ),
        (P, "Among the normalisation methods studied, PHI Standardization gave the best student model."),
        (
            NEG,
            "The study finds that the teachers' activation statistics have no effect on the quality of the distilled student.",
        ),
    ],
    "SimLM": [
        (
            P,
            "SimLM pre-trains a bottleneck architecture that compresses a passage into a dense vector through self-supervision.",
        ),
        (
            P,
            "SimLM needs only an unlabelled corpus, so it can be used even when no labelled data or queries exist.",
        ),
        (SWAP, "SimLM pre-trains with a masked language modeling objective inspired by BERT."),
        (OVER, "SimLM outperforms every multi-vector retriever while needing less storage than any of them."),
    ],
    "Layer Normalization": [
        (
            P,
            "Layer normalization takes the mean and variance from all summed inputs to the neurons of a layer on a single training case.",
        ),
        (
            P,
            "Unlike batch normalization, layer normalization performs the same computation during training and at test time.",
        ),
        (NEG, "Like batch normalization, layer normalization depends on the mini-batch size."),
        (
            OVER,
            "Layer normalization cuts training time in every kind of neural network, convolutional networks included.",
        ),
    ],
    "Distributed Representations of Words": [
        (
            P,
            "Subsampling frequent words speeds training up considerably and makes the word representations more regular.",
        ),
        (P, "Negative sampling is proposed as a simple alternative to the hierarchical softmax."),
        (SWAP, "The paper extends the continuous bag-of-words model with negative sampling."),
        (
            NEG,
            "The authors conclude that good vector representations cannot be learned for millions of phrases.",
        ),
    ],
    "HyperAttention": [
        (
            P,
            "HyperAttention finds the large entries of the attention matrix with Locality Sensitive Hashing.",
        ),
        (
            P,
            "With a 32k context, HyperAttention speeds up ChatGLM2 inference by 50%, while perplexity rises from 5.6 to 6.3.",
        ),
        (
            NUM,
            "With causal masking at a 131k context, HyperAttention gives a 50-fold speedup on a single attention layer.",
        ),
        (NEG, "HyperAttention makes ChatGLM2 faster without any increase in perplexity."),
    ],
    "Model Stock": [
        (
            P,
            "Model Stock approximates a weight close to the centre of the fine-tuned weight space from just two fine-tuned models.",
        ),
        (P, "Using only two fine-tuned models, Model Stock's layer-wise weight averaging beats Model Soup."),
        (NUM, "Model Stock averages the weights of five fine-tuned models."),
        (
            SWAP,
            "Model Stock was demonstrated with fine-tuned models built on pre-trained DINOv2 architectures.",
        ),
    ],
    "Chain of LoRA": [
        (
            P,
            "COLA repeatedly merges the learned LoRA modules into the pre-trained weights and starts optimising fresh LoRA modules.",
        ),
        (P, "The iterative scheme of Chain of LoRA draws on the Frank-Wolfe algorithm."),
        (NUM, "COLA was evaluated on OPT and llama-2 across nine benchmark tasks."),
        (NEG, "COLA improves on LoRA but needs extra memory and computation."),
    ],
    "Research without Re-search": [
        (
            P,
            "Scaling-law methods that require hyperparameter searches on the largest models are impractical when resources are limited.",
        ),
        (
            P,
            "Maximal Update parametrization allows scaling laws to be fitted accurately near common loss basins without any hyperparameter search.",
        ),
        (
            P,
            "With this approach, models can be compared at large scale by predicting their loss before training starts.",
        ),
        (
            NEG,
            "The paper shows that accurate loss prediction still requires a hyperparameter search on the largest models.",
        ),
    ],
    "Data Mixing Laws": [
        (
            P,
            "Fitting functions on sample mixtures lets one predict how a model will perform on mixtures it was never trained on.",
        ),
        (
            P,
            "Optimising the mixture of a 1B model trained on 100B RedPajama tokens matched a default-mixture model trained for 48% more steps.",
        ),
        (
            NUM,
            "The optimised mixture for a 1B model trained on 100B tokens matches a default-mixture model trained with 100% more steps.",
        ),
        (SWAP, "The method optimises the training mixture of a 1B model trained on The Pile."),
    ],
    "Sharpness-Aware Minimization": [
        (
            P,
            "SAM improves generalisation on benchmarks such as CIFAR-10, CIFAR-100 and ImageNet, as well as in fine-tuning.",
        ),
        (
            P,
            "SAM looks for parameters whose whole neighbourhood has uniformly low loss, which yields a min-max problem that gradient descent can handle efficiently.",
        ),
        (
            P,
            "SAM's robustness to label noise is on par with that of state-of-the-art methods built specifically for noisy labels.",
        ),
        (OVER, "SAM sets a new state of the art on every benchmark dataset and model it was tested on."),
        (NEG, "SAM minimises only the training loss value and ignores the sharpness of the loss."),
    ],
    "Batch Normalization": [
        (
            P,
            "With batch normalisation, much higher learning rates can be used and initialisation needs less care.",
        ),
        (
            P,
            "Batch Normalization makes normalisation part of the model architecture and normalises each training mini-batch.",
        ),
        (
            P,
            "On a state-of-the-art image classifier, Batch Normalization reaches the same accuracy in 14 times fewer training steps.",
        ),
        (NUM, "An ensemble of batch-normalized networks reaches 4.8% top-5 validation error on ImageNet."),
        (OVER, "Batch Normalization always removes the need for Dropout."),
    ],
    "Kanana": [
        (P, "Kanana's post-training combines supervised fine-tuning with preference optimisation."),
        (
            P,
            "To keep pre-training compute-efficient, Kanana filters for high-quality data, pre-trains in stages, scales up depth, and prunes and distils its models.",
        ),
        (
            P,
            "The Kanana models range from 2.1B to 32.5B parameters, and the 2.1B base, instruct and embedding models are public.",
        ),
        (NUM, "Kanana's 32.5B models are publicly released."),
        (OVER, "Kanana outperforms state-of-the-art models in both Korean and English."),
    ],
    "A Baseline for Detecting Misclassified": [
        (
            P,
            "Correctly classified inputs tend to get a higher maximum softmax probability than misclassified or out-of-distribution inputs, so they can be told apart.",
        ),
        (P, "The baseline's effectiveness is shown on vision, NLP and speech recognition tasks."),
        (NEG, "The authors show that their softmax baseline cannot be surpassed."),
        (SWAP, "The baseline relies on uncertainty estimates from Monte Carlo dropout."),
    ],
    "Model soups": [
        (P, "A model soup of ViT-G reached a new state of the art of 90.94% top-1 accuracy on ImageNet."),
        (
            P,
            "Averaging the weights of several models fine-tuned with different hyperparameters often raises accuracy and robustness.",
        ),
        (
            P,
            "Unlike an ensemble, a model soup adds no inference or memory cost however many models are averaged.",
        ),
        (NUM, "The model-soup ViT-G reaches 94.90% top-1 accuracy on ImageNet."),
        (SWAP, "Model soups were applied when fine-tuning CLIP, ALIGN and a ViT-G pre-trained on LAION."),
    ],
    "Scaling Parameter-Constrained": [
        (
            P,
            "Effective training tokens combine two easily computed text indicators: diversity, and syntheticity as judged by a teacher model.",
        ),
        (P, "The authors pretrained more than 200 models ranging from 25M to 1.5B parameters."),
        (NUM, "The fitted constants correlate with true accuracies at a Pearson correlation of +0.93."),
        (
            NEG,
            "The paper argues that data quality has little influence on the performance of parameter-constrained models.",
        ),
    ],
    "Sigmoid Loss for Language Image": [
        (
            P,
            "The sigmoid loss works on individual image-text pairs and needs no global view of all pairwise similarities for normalisation.",
        ),
        (
            P,
            "With just four TPUv4 chips, a Large LiT model with a 20k batch reaches 84.5% zero-shot accuracy on ImageNet in two days.",
        ),
        (NUM, "Batch sizes beyond 4k bring quickly diminishing returns, and 4k is found to be sufficient."),
        (NEG, "The sigmoid loss performs worse than the softmax contrastive loss at small batch sizes."),
    ],
    "Smaller Language Models are capable": [
        (
            P,
            "Choosing instruction-tuning data by the samples' learning percentage gives results equal to or better than training on the whole dataset.",
        ),
        (
            P,
            "A 350M model can pick hard, high-quality training examples for a 13B model, which then matches or beats the model tuned on all the data.",
        ),
        (SWAP, "The experiments use open-source Falcon and Mistral models of up to 13B parameters."),
        (NUM, "The self-selection ability was shown for models from 350M up to 70B parameters."),
    ],
    "Mini-Ensemble Low-Rank": [
        (P, "The diversity among the mini LoRAs is meant to improve generalisation."),
        (
            P,
            "MELoRA freezes the pretrained weights and trains a group of mini LoRAs, keeping a higher rank with fewer trainable parameters.",
        ),
        (P, "On instruction following tasks, MELoRA beats LoRA with 36 times fewer trainable parameters."),
        (
            NUM,
            "On natural language understanding tasks, MELoRA outperforms LoRA with 36 times fewer trainable parameters.",
        ),
        (NEG, "MELoRA needs fewer trainable parameters than LoRA but performs worse."),
    ],
    "Reinforcement Learning Finetunes Small": [
        (
            P,
            "Fine-tuning only the identified subnetwork recovers the test accuracy and gives a model almost identical to full fine-tuning.",
        ),
        (
            P,
            "RL fine-tuning changes only a small subnetwork of 5 to 30 percent of an LLM's parameters and leaves the rest practically untouched.",
        ),
        (
            P,
            "The sparse updates are spread over nearly all parameter matrices rather than a few layers, and they are close to full rank.",
        ),
        (NUM, "The update sparsity appeared with all 10 RL algorithms and all 7 LLMs studied."),
        (NEG, "The authors attribute the update sparsity mainly to KL regularization and gradient clipping."),
    ],
    "HELMET": [
        (
            P,
            "Most long-context models get perfect needle-in-a-haystack scores, yet open-source models fall well behind closed ones when full-context reasoning is needed.",
        ),
        (
            P,
            "HELMET covers seven application-centred categories, with input lengths controllable up to 128k tokens.",
        ),
        (
            P,
            "Across 51 long-context models, needle-in-a-haystack results turned out to predict downstream performance poorly.",
        ),
        (
            NEG,
            "Open-source long-context models match closed ones on tasks that require full-context reasoning.",
        ),
        (NUM, "HELMET's study compares 128 long-context language models."),
    ],
    "Conv-TasNet": [
        (
            P,
            "Conv-TasNet has a smaller model and a shorter minimum latency, which suits both offline and real-time separation.",
        ),
        (
            P,
            "Conv-TasNet separates speech in the time domain: a linear encoder represents the waveform, masks are applied to that representation, and a linear decoder turns it back into waveforms.",
        ),
        (
            P,
            "The masks come from a temporal convolutional network made of stacked 1-D dilated convolution blocks.",
        ),
        (SWAP, "Conv-TasNet estimates its masks with a bidirectional LSTM network."),
        (
            OVER,
            "Conv-TasNet surpasses every ideal time-frequency mask for mixtures of any number of speakers.",
        ),
    ],
    "Qwen2.5-1M": [
        (
            P,
            "To cut inference cost, Qwen2.5-1M uses sparse attention with chunked prefill, plus a sparsity refinement step to keep precision.",
        ),
        (
            P,
            "Qwen2.5-1M's inference framework includes a training-free length extrapolation method that extends context length at least fourfold.",
        ),
        (P, "With the inference framework, prefill for 1M-token contexts becomes 3x to 7x faster."),
        (NUM, "Qwen2.5-14B-Instruct-1M supports contexts four times longer than GPT-4o-mini."),
        (
            NEG,
            "The long-context gains of Qwen2.5-1M come at the cost of worse performance on short-context tasks.",
        ),
    ],
    "LongHeads": [
        (
            P,
            "Chunks are distributed to heads according to the correlation between query and key representations.",
        ),
        (
            P,
            "LongHeads lets each attention head attend only to selected important context chunks, so that every head works within the length it was trained on.",
        ),
        (P, "LongHeads needs no training and runs in linear time."),
        (SWAP, "LongHeads assigns context chunks to heads using a separately trained retriever model."),
    ],
    "How to Train Long-Context": [
        (
            P,
            "Books and code repositories supply good long-context data, but they only work well when combined with high-quality short data.",
        ),
        (
            P,
            "ProLong-8B starts from Llama-3, is trained on 40B tokens, and leads models of similar size on long-context tasks at 128K.",
        ),
        (NUM, "ProLong can process contexts of up to 1M tokens."),
        (
            NEG,
            "For supervised fine-tuning, long instruction datasets turn out to be necessary for strong long-context performance.",
        ),
    ],
    "Make Your LLM Fully Utilize": [
        (
            P,
            "IN2 training uses synthesised long-context QA data whose answers need awareness of a short segment of about 128 tokens inside a 4K-32K context.",
        ),
        (
            P,
            "FILM-7B raises the F1 score on NarrativeQA from 23.5 to 26.9 while its MMLU accuracy stays about the same.",
        ),
        (SWAP, "FILM-7B was obtained by applying IN2 training to Llama-2-7B."),
        (OVER, "FILM-7B improves both long-context and short-context tasks, with a large gain on MMLU."),
    ],
    "XL3M": [
        (
            P,
            "XL3M scores how relevant each segment is to the question and splices the relevant segments together in their original order into a key context.",
        ),
        (
            P,
            "XL3M splits the input into short sub-contexts, each pairing one segment with a common 'question' made of the last few tokens of the original context.",
        ),
        (
            P,
            "The authors observe that an LLM's prediction accuracy is strongly correlated with its certainty.",
        ),
        (
            NUM,
            "With XL3M, a Llama2-7B model can reason over 200M-token sequences on an 8-card Ascend 910B machine.",
        ),
        (NEG, "XL3M requires fine-tuning the LLM on long sequences before it can handle them."),
    ],
}

#: (paper the claim is true of, claim, paper it is checked against): all unsupported.
OTHER_PAPER: list[tuple[str, str, str]] = [
    (
        "E^2-LLM",
        "Augmenting the RoPE scale and position index parameters during training makes the model robust when interpolating to arbitrary context lengths.",
        "XL3M",
    ),
    (
        "XL3M",
        "A Llama2-7B model can reason over sequences of 20M tokens with this training-free approach.",
        "LongHeads",
    ),
    (
        "LongHeads",
        "Each attention head attends only to selected context chunks so that it stays within its trained length.",
        "XL3M",
    ),
    (
        "How to Train Long-Context",
        "Training with sequences longer than the evaluation length improves long-context performance.",
        "Make Your LLM Fully Utilize",
    ),
    (
        "Make Your LLM Fully Utilize",
        "After training on synthesised long-context question-answer data, the model robustly retrieves information from any position of its 32K context window.",
        "How to Train Long-Context",
    ),
    (
        "FlexiGPT",
        "Pruned blocks are replaced by weight-shared blocks with block-specific low-rank adapters initialised from low-rank SVD reconstructions.",
        "Mini-Ensemble Low-Rank",
    ),
    (
        "Mini-Ensemble Low-Rank",
        "Training a group of mini LoRAs keeps a higher rank than LoRA with fewer trainable parameters.",
        "Chain of LoRA",
    ),
    (
        "Chain of LoRA",
        "Learned LoRA modules are merged into the pretrained weights, after which new LoRA modules are optimised from scratch.",
        "Mini-Ensemble Low-Rank",
    ),
    (
        "Scaling Laws for Upcycling",
        "An interaction term between the dense and the upcycled training data limits the efficiency of upcycling at large compute budgets.",
        "Skywork-MoE",
    ),
    (
        "Skywork-MoE",
        "Gating logit normalization improves the diversification of experts in the upcycled MoE model.",
        "Scaling Laws for Upcycling",
    ),
    (
        "PHI-S",
        "Standardising every dimension of the teachers' distributions with one scale through Hadamard matrices gives the best student model.",
        "MobileCLIP",
    ),
    (
        "Research without Re-search",
        "Maximal Update parametrization allows scaling laws to be fitted accurately without hyperparameter search.",
        "Data Mixing Laws",
    ),
    (
        "Data Mixing Laws",
        "Fitting functions on sample mixtures predicts a model's performance on unseen data mixtures before the actual runs.",
        "Scaling Parameter-Constrained",
    ),
    (
        "Scaling Parameter-Constrained",
        "More than 200 models from 25M to 1.5B parameters were pretrained to estimate the constants relating text quality to performance.",
        "Data Mixing Laws",
    ),
    (
        "Layer Normalization",
        "Computing the normalization statistics separately at each time step makes the method easy to apply to recurrent networks.",
        "Batch Normalization",
    ),
    (
        "Batch Normalization",
        "The normalization also acts as a regularizer and in some cases makes Dropout unnecessary.",
        "Online Normalization for Training",
    ),
    (
        "Model soups",
        "Averaging many fine-tuned models adds no inference or memory cost, and the resulting ViT-G reaches 90.94% top-1 accuracy on ImageNet.",
        "Model Stock",
    ),
    (
        "Model Stock",
        "A weight close to the centre of the fine-tuned weight space can be approximated from only two fine-tuned models.",
        "Model soups",
    ),
    (
        "NV-Embed",
        "A two-stage contrastive instruction-tuning method first trains on retrieval data and then blends in non-retrieval datasets.",
        "Pooling And Attention",
    ),
    (
        "Pooling And Attention",
        "Multi-Layers Trainable Pooling transforms the outputs of all hidden layers with a cross-attention network.",
        "NV-Embed",
    ),
    (
        "Data Filtering Networks",
        "A ViT-H trained on the filtered dataset reaches 83.0% zero-shot accuracy on ImageNet, beating models trained on LAION-2B.",
        "LAION-5B",
    ),
    (
        "LAION-5B",
        "The dataset contains 5.85 billion CLIP-filtered image-text pairs.",
        "Data Filtering Networks",
    ),
    (
        "Too Large; Data Reduction",
        "Generating new captions for the selected samples mitigates the misalignment between images and texts.",
        "Less is More: Selective Reduction",
    ),
    (
        "DreamLIP",
        "Sub-captions sampled from long captions form several positive pairs for each image.",
        "MobileCLIP",
    ),
    (
        "MobileCLIP",
        "Storing the additional knowledge in a reinforced dataset avoids compute overhead at training time.",
        "Sigmoid Loss for Language Image",
    ),
    (
        "Sigmoid Loss for Language Image",
        "A pairwise sigmoid loss removes the need for a global view of pairwise similarities for normalization.",
        "MobileCLIP",
    ),
    (
        "SimLM",
        "Pre-training a representation bottleneck with a replaced language modeling objective improves dense passage retrieval.",
        "NV-Embed",
    ),
]


def held_out_papers() -> dict[str, tuple[str, str]]:
    """normalised title -> (title, abstract) for the corpus papers not in train-papers.txt."""
    papers = merge(load_paths([BUNDLED_CORPUS]).papers)
    train = {normalise_title(t) for t in TRAIN.read_text(encoding="utf-8").splitlines() if t.strip()}
    return {
        normalise_title(p.title): (p.title, p.abstract)
        for p in papers
        if normalise_title(p.title) not in train
    }


def resolve(prefix: str, held: dict[str, tuple[str, str]]) -> tuple[str, str]:
    key = normalise_title(prefix)
    found = [v for k, v in held.items() if k.startswith(key)]
    if len(found) != 1:
        raise SystemExit(f"{prefix!r} matches {len(found)} held-out papers, expected exactly one")
    return found[0]


def pair(
    held: dict[str, tuple[str, str]], source_of: str, kind: str, claim: str, claim_of: str | None = None
) -> dict[str, object]:
    """One labelled pair: `claim` checked against the abstract of the paper `source_of` names;
    `claim_of` names the paper an `other_paper` claim is really about."""
    title, abstract = resolve(source_of, held)
    row: dict[str, object] = {
        "claim": claim,
        "source": abstract,
        "label": kind == P,
        "kind": kind,
        "title": title,
    }
    if claim_of:
        row["claim_title"] = resolve(claim_of, held)[0]
    return row


def build() -> list[dict[str, object]]:
    held = held_out_papers()
    first = [pair(held, prefix, kind, claim) for prefix, claims in CLAIMS.items() for kind, claim in claims]
    first += [
        pair(held, source_of, "other_paper", claim, claim_of) for claim_of, claim, source_of in OTHER_PAPER
    ]
    later = [
        {"id": f"{prefix}-{i:03d}", **pair(held, c["title"], c["kind"], c["claim"], c.get("claim_title"))}
        for prefix, path in (("h2", CLAIMS_V2), ("h3", CLAIMS_V3))
        for i, c in enumerate(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    ]
    return [{"id": f"jp-{i:03d}", **r} for i, r in enumerate(first)] + later


def main() -> None:
    rows = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[str(r["kind"])] = kinds.get(str(r["kind"]), 0) + 1
    print(f"wrote {len(rows)} pairs to {OUT}: {kinds}", file=sys.stderr)


if __name__ == "__main__":
    main()
